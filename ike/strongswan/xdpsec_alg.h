/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Maps the algorithms charon negotiated (IKEv2 transform IDs and key
 * lengths) to the ip-xfrm names xdpsec's ESP engine accepts
 * (crypto/esp/alg.go), or refuses them with a reason charon logs.
 */

#ifndef XDPSEC_ALG_H_
#define XDPSEC_ALG_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** xdpsec's names (crypto/esp/alg.go). */
#define XDPSEC_ALG_GCM "rfc4106(gcm(aes))"
#define XDPSEC_ALG_CHACHA "rfc7539esp(chacha20,poly1305)"
#define XDPSEC_ALG_GMAC "rfc4543(gcm(aes))"
#define XDPSEC_ALG_CBC "cbc(aes)"
#define XDPSEC_ALG_NULL "ecb(cipher_null)"
#define XDPSEC_ALG_HMAC256 "hmac(sha256)"

typedef struct {
	/** combined-mode algorithm, or NULL for enc + auth */
	const char *aead;
	/** ICV length of the AEAD in bits */
	int icv_bits;
	/** cipher of an encrypt-then-MAC suite */
	const char *enc;
	/** whether the cipher takes a key (NULL takes none) */
	bool enc_keyed;
	/** integrity algorithm of an encrypt-then-MAC suite */
	const char *auth;
	/** its truncation length in bits */
	int trunc_bits;
} xdpsec_suite_t;

/**
 * Map charon's encryption and integrity algorithms.
 *
 * @param enc_alg		encryption_algorithm_t
 * @param enc_key_len	length of the encryption key charon derived (with the
 *						4-byte salt for AES-GCM, AES-GMAC and ChaCha20-Poly1305)
 * @param int_alg		integrity_algorithm_t (AUTH_UNDEFINED with an AEAD)
 * @param int_key_len	length of the integrity key
 * @param reason		why the combination is refused
 * @return				true and suite filled, or false and reason filled
 */
bool xdpsec_map_algorithms(uint16_t enc_alg, size_t enc_key_len,
						   uint16_t int_alg, size_t int_key_len,
						   xdpsec_suite_t *suite, char *reason,
						   size_t reasonlen);

#endif /** XDPSEC_ALG_H_ */
