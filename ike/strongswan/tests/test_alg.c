/* SPDX-License-Identifier: GPL-2.0-or-later */

#include "test.h"

#include <library.h>
#include <crypto/crypters/crypter.h>
#include <crypto/signers/signer.h>

#include "../xdpsec_alg.h"

typedef struct {
	uint16_t enc;
	size_t enc_len;
	uint16_t integ;
	size_t int_len;
	/* expected: aead name, or enc + auth; NULL refusal text fragment */
	const char *aead;
	int bits;
	const char *enc_name;
	bool enc_keyed;
	const char *refusal;
} alg_case_t;

#define AEAD(e, len, name, icv) { .enc = e, .enc_len = len, \
	.integ = AUTH_UNDEFINED, .aead = name, .bits = icv }
#define ETM(e, len, name, keyed) { .enc = e, .enc_len = len, \
	.integ = AUTH_HMAC_SHA2_256_128, .int_len = 32, .bits = 128, \
	.enc_name = name, .enc_keyed = keyed }
#define BAD(e, len, i, ilen, why) { .enc = e, .enc_len = len, .integ = i, \
	.int_len = ilen, .refusal = why }

static const alg_case_t cases[] = {
	/* every suite xdpsec runs (crypto/esp/alg.go) */
	AEAD(ENCR_AES_GCM_ICV16, 20, "rfc4106(gcm(aes))", 128),
	AEAD(ENCR_AES_GCM_ICV16, 28, "rfc4106(gcm(aes))", 128),
	AEAD(ENCR_AES_GCM_ICV16, 36, "rfc4106(gcm(aes))", 128),
	AEAD(ENCR_AES_GCM_ICV12, 20, "rfc4106(gcm(aes))", 96),
	AEAD(ENCR_AES_GCM_ICV12, 28, "rfc4106(gcm(aes))", 96),
	AEAD(ENCR_AES_GCM_ICV12, 36, "rfc4106(gcm(aes))", 96),
	AEAD(ENCR_CHACHA20_POLY1305, 36, "rfc7539esp(chacha20,poly1305)", 128),
	AEAD(ENCR_NULL_AUTH_AES_GMAC, 20, "rfc4543(gcm(aes))", 128),
	AEAD(ENCR_NULL_AUTH_AES_GMAC, 28, "rfc4543(gcm(aes))", 128),
	AEAD(ENCR_NULL_AUTH_AES_GMAC, 36, "rfc4543(gcm(aes))", 128),
	ETM(ENCR_AES_CBC, 16, "cbc(aes)", true),
	ETM(ENCR_AES_CBC, 24, "cbc(aes)", true),
	ETM(ENCR_AES_CBC, 32, "cbc(aes)", true),
	ETM(ENCR_NULL, 0, "ecb(cipher_null)", false),

	/* refused, each with its reason */
	BAD(ENCR_AES_GCM_ICV8, 20, AUTH_UNDEFINED, 0, "8-byte AES-GCM"),
	BAD(ENCR_AES_GCM_ICV16, 16, AUTH_UNDEFINED, 0, "not an AES key"),
	BAD(ENCR_AES_GCM_ICV16, 21, AUTH_UNDEFINED, 0, "not an AES key"),
	BAD(ENCR_AES_GCM_ICV16, 2, AUTH_UNDEFINED, 0, "not an AES key"),
	BAD(ENCR_AES_GCM_ICV16, 20, AUTH_HMAC_SHA2_256_128, 32,
		"no separate integrity"),
	BAD(ENCR_CHACHA20_POLY1305, 32, AUTH_UNDEFINED, 0, "32-byte key"),
	BAD(ENCR_AES_CBC, 20, AUTH_HMAC_SHA2_256_128, 32, "AES-CBC key"),
	BAD(ENCR_AES_CBC, 16, AUTH_HMAC_SHA2_256_96, 32, "96 bits"),
	BAD(ENCR_AES_CBC, 16, AUTH_HMAC_SHA1_96, 20,
		"integrity algorithm not supported"),
	BAD(ENCR_AES_CBC, 16, AUTH_HMAC_SHA2_512_256, 64,
		"integrity algorithm not supported"),
	BAD(ENCR_AES_CBC, 16, AUTH_AES_XCBC_96, 16,
		"integrity algorithm not supported"),
	BAD(ENCR_AES_CBC, 16, AUTH_UNDEFINED, 0, "integrity algorithm is required"),
	BAD(ENCR_AES_CBC, 16, AUTH_HMAC_SHA2_256_128, 20, "needs 32"),
	BAD(ENCR_NULL, 0, AUTH_UNDEFINED, 0, "integrity algorithm is required"),
	BAD(ENCR_NULL, 4, AUTH_HMAC_SHA2_256_128, 32, "with a key"),
	BAD(ENCR_3DES, 24, AUTH_HMAC_SHA2_256_128, 32,
		"encryption algorithm not supported"),
	BAD(ENCR_AES_CTR, 20, AUTH_HMAC_SHA2_256_128, 32,
		"encryption algorithm not supported"),
	BAD(ENCR_AES_CCM_ICV16, 19, AUTH_UNDEFINED, 0,
		"encryption algorithm not supported"),
	BAD(ENCR_CAMELLIA_CBC, 16, AUTH_HMAC_SHA2_256_128, 32,
		"encryption algorithm not supported"),
	BAD(ENCR_UNDEFINED, 0, AUTH_HMAC_SHA2_256_128, 32,
		"encryption algorithm not supported"),
};

static void test_alg_table(void)
{
	char reason[256];
	xdpsec_suite_t s;
	size_t i;

	for (i = 0; i < countof(cases); i++)
	{
		const alg_case_t *c = &cases[i];
		bool ok;

		reason[0] = '\0';
		ok = xdpsec_map_algorithms(c->enc, c->enc_len, c->integ, c->int_len,
								   &s, reason, sizeof(reason));
		if (c->refusal)
		{
			CHECK_MSG(!ok, "case %zu (%d/%d) accepted, want refused", i,
					  c->enc, c->integ);
			CHECK_MSG(strstr(reason, c->refusal), "case %zu: reason \"%s\" "
					  "lacks \"%s\"", i, reason, c->refusal);
			continue;
		}
		CHECK_MSG(ok, "case %zu (%d/%d) refused: %s", i, c->enc, c->integ,
				  reason);
		if (c->aead)
		{
			CHECK_STR(s.aead, c->aead);
			CHECK_INT(s.icv_bits, c->bits);
			CHECK(s.enc == NULL && s.auth == NULL);
		}
		else
		{
			CHECK(s.aead == NULL);
			CHECK_STR(s.enc, c->enc_name);
			CHECK_INT(s.enc_keyed, c->enc_keyed);
			CHECK_STR(s.auth, "hmac(sha256)");
			CHECK_INT(s.trunc_bits, c->bits);
		}
	}
}

const test_t alg_tests[] = {
	{ "alg/table", test_alg_table },
	{ NULL, NULL },
};
