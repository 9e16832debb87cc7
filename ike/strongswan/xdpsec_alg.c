/* SPDX-License-Identifier: GPL-2.0-or-later */

#include "xdpsec_alg.h"

#include <stdio.h>
#include <string.h>

#include <crypto/crypters/crypter.h>
#include <crypto/signers/signer.h>

#define SALT 4

static const char supported[] = "xdpsec supports AES-GCM (16- or 12-byte "
	"ICV), ChaCha20-Poly1305, AES-GMAC, and AES-CBC or NULL with "
	"HMAC-SHA2-256-128";

static bool aes_key(size_t len)
{
	return len == 16 || len == 24 || len == 32;
}

bool xdpsec_map_algorithms(uint16_t enc_alg, size_t enc_key_len,
						   uint16_t int_alg, size_t int_key_len,
						   xdpsec_suite_t *suite, char *reason,
						   size_t reasonlen)
{
	memset(suite, 0, sizeof(*suite));
	switch (enc_alg)
	{
		case ENCR_AES_GCM_ICV16:
		case ENCR_AES_GCM_ICV12:
		case ENCR_NULL_AUTH_AES_GMAC:
			if (enc_key_len < SALT || !aes_key(enc_key_len - SALT))
			{
				snprintf(reason, reasonlen, "a key of %zu bytes is not an AES "
						 "key with a 4-byte salt", enc_key_len);
				return false;
			}
			break;
		case ENCR_CHACHA20_POLY1305:
			if (enc_key_len != 32 + SALT)
			{
				snprintf(reason, reasonlen, "ChaCha20-Poly1305 needs a 32-byte "
						 "key and a 4-byte salt, got %zu bytes", enc_key_len);
				return false;
			}
			break;
		case ENCR_AES_GCM_ICV8:
			/* RFC 4106 allows it, Go's GCM does 12..16-byte tags */
			snprintf(reason, reasonlen, "8-byte AES-GCM ICVs are not "
					 "supported (%s)", supported);
			return false;
		case ENCR_AES_CBC:
			if (!aes_key(enc_key_len))
			{
				snprintf(reason, reasonlen, "AES-CBC key of %zu bytes",
						 enc_key_len);
				return false;
			}
			break;
		case ENCR_NULL:
			if (enc_key_len != 0)
			{
				snprintf(reason, reasonlen, "NULL encryption with a key of %zu "
						 "bytes", enc_key_len);
				return false;
			}
			break;
		default:
			snprintf(reason, reasonlen, "encryption algorithm not supported "
					 "(%s)", supported);
			return false;
	}

	switch (enc_alg)
	{
		case ENCR_AES_GCM_ICV16:
		case ENCR_AES_GCM_ICV12:
		case ENCR_NULL_AUTH_AES_GMAC:
		case ENCR_CHACHA20_POLY1305:
			if (int_alg != AUTH_UNDEFINED)
			{
				snprintf(reason, reasonlen, "a combined-mode algorithm takes no "
						 "separate integrity algorithm");
				return false;
			}
			suite->icv_bits = enc_alg == ENCR_AES_GCM_ICV12 ? 96 : 128;
			suite->aead = enc_alg == ENCR_CHACHA20_POLY1305 ? XDPSEC_ALG_CHACHA :
						  enc_alg == ENCR_NULL_AUTH_AES_GMAC ? XDPSEC_ALG_GMAC :
															   XDPSEC_ALG_GCM;
			return true;
		default:
			break;
	}

	switch (int_alg)
	{
		case AUTH_HMAC_SHA2_256_128:
			if (int_key_len != 32)
			{
				snprintf(reason, reasonlen, "HMAC-SHA2-256-128 key of %zu "
						 "bytes (RFC 4868 needs 32)", int_key_len);
				return false;
			}
			break;
		case AUTH_HMAC_SHA2_256_96:
			snprintf(reason, reasonlen, "HMAC-SHA2-256 truncated to 96 bits "
					 "(the sha256_96 option) is not supported: xdpsec uses "
					 "RFC 4868's 128 bits");
			return false;
		case AUTH_UNDEFINED:
			/* RFC 8221: encryption without integrity must not be used */
			snprintf(reason, reasonlen, "an integrity algorithm is required "
					 "with this cipher (%s)", supported);
			return false;
		default:
			snprintf(reason, reasonlen, "integrity algorithm not supported "
					 "(%s)", supported);
			return false;
	}
	suite->enc = enc_alg == ENCR_AES_CBC ? XDPSEC_ALG_CBC : XDPSEC_ALG_NULL;
	suite->enc_keyed = enc_alg == ENCR_AES_CBC;
	suite->auth = XDPSEC_ALG_HMAC256;
	suite->trunc_bits = 128;
	return true;
}
