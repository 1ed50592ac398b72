/*
 * tls: the one SSL_CTX shared by every listener and worker, certificate
 * selection in the ClientHello callback, ALPN and session tickets.
 *
 * One shared SSL_CTX (instead of one per certificate, HAProxy's layout) saves
 * about 100 us and 14 KB per certificate (docs/internals.md, "One SSL_CTX for
 * every certificate") and keeps the number of
 * objects the OpenSSL 3.0 library context has to lock small.
 */
#include "proxy/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/log.h"

/* Parses the server_name extension; returns the host name length or 0. */
static size_t sni_parse(const unsigned char *p, size_t len, const unsigned char **name)
{
	size_t list, nlen;

	if (len < 5)
		return 0;
	list = ((size_t)p[0] << 8) | p[1];
	if (list + 2 != len || p[2] != TLSEXT_NAMETYPE_host_name)
		return 0;
	nlen = ((size_t)p[3] << 8) | p[4];
	if (nlen == 0 || nlen + 5 > len || nlen > 255)
		return 0;
	*name = p + 5;
	return nlen;
}

/* Whether the client's signature_algorithms allow an ECDSA certificate. */
static int ecdsa_ok(SSL *ssl)
{
	const unsigned char *p;
	size_t len, n;

	/* Without the extension (old TLS 1.2 clients) RFC 5246 lets the
	 * server assume SHA-1 with the negotiated key type; allow ECDSA. */
	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_signature_algorithms, &p, &len))
		return 1;
	if (len < 2)
		return 0;
	n = ((size_t)p[0] << 8) | p[1];
	if (n + 2 > len)
		return 0;
	for (size_t i = 2; i + 1 < n + 2; i += 2)
		if (p[i + 1] == 0x03) /* TLS SignatureAlgorithm ecdsa */
			return 1;
	return 0;
}

static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
	struct px_conn *c = SSL_get_app_data(ssl);
	const unsigned char *ext, *name = NULL;
	size_t extlen, nlen = 0;
	struct cert_store *store;
	const struct cert_item *item;
	int used_default = 0;
	unsigned flags = 0;

	(void)arg;
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &extlen))
		nlen = sni_parse(ext, extlen, &name);
	if (nlen > 0) {
		memcpy(c->sni, name, nlen);
		c->sni[nlen] = '\0';
		c->sni_len = (uint16_t)nlen;
	}
	if (ecdsa_ok(ssl))
		flags |= CERT_LOOKUP_ECDSA_OK;
	store = px_worker_store(c->w);
	item = store != NULL
	           ? cert_store_lookup(store, nlen ? c->sni : NULL, nlen, flags, &used_default)
	           : NULL;
	if (used_default || item == NULL)
		if (nlen > 0)
			PX_INC(c->w->st.unknown_sni);
	if (item == NULL) {
		c->flags |= PX_F_NOCERT;
		*al = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (used_default)
		PX_INC(c->w->st.default_cert);
	if (cert_item_use(item, ssl) < 0) {
		c->flags |= PX_F_NOCERT;
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
	struct px_proc *p = arg;
	unsigned char *sel;

	(void)ssl;
	/* Server preference: the first protocol of our list the client offers. */
	if (SSL_select_next_proto(&sel, outlen, p->alpn_wire, (unsigned)p->alpn_len, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/*
 * Session tickets (docs/control.md): the second-to-last key encrypts, every
 * key decrypts. A ticket decrypted with a non-encrypting key is renewed.
 */
static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                     EVP_CIPHER_CTX *ctx, EVP_MAC_CTX *hctx, int enc)
{
	struct px_proc *p = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	OSSL_PARAM params[3];
	const struct px_tkey *k = NULL;
	int rc = 0, enc_idx;

	pthread_rwlock_rdlock(&p->tk_lock);
	if (p->ntkeys == 0)
		goto out;
	enc_idx = p->ntkeys >= 2 ? p->ntkeys - 2 : 0;
	if (enc) {
		k = &p->tkeys[enc_idx];
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(p->tk_cipher)) <= 0)
			goto out;
		memcpy(key_name, k->name, 16);
		if (!EVP_EncryptInit_ex(ctx, p->tk_cipher, NULL, k->aes, iv))
			goto out;
		rc = 1;
	} else {
		int i;
		for (i = 0; i < p->ntkeys; i++)
			if (memcmp(key_name, p->tkeys[i].name, 16) == 0)
				break;
		if (i == p->ntkeys)
			goto out; /* unknown key: full handshake */
		k = &p->tkeys[i];
		if (!EVP_DecryptInit_ex(ctx, p->tk_cipher, NULL, k->aes, iv))
			goto out;
		rc = i == enc_idx ? 1 : 2;
	}
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, 32);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_CTX_set_params(hctx, params))
		rc = -1;
out:
	pthread_rwlock_unlock(&p->tk_lock);
	return rc;
}

static int b64_decode_key(const char *line, size_t len, unsigned char out[80])
{
	unsigned char tmp[128];
	int n, pad = 0;

	if (len == 0 || len > 120 || len % 4 != 0)
		return -1;
	if (line[len - 1] == '=')
		pad++;
	if (len >= 2 && line[len - 2] == '=')
		pad++;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)line, (int)len);
	if (n < 0 || n - pad != 80) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return -1;
	}
	memcpy(out, tmp, 80);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

int px_tickets_load(struct px_proc *p, char *err, size_t errlen)
{
	const char *path = p->cfg->tls.ticket_key_file;
	struct px_tkey keys[PX_MAX_TKEYS];
	char line[256];
	int n = 0, lineno = 0;
	FILE *f;

	if (!p->tickets_on) {
		snprintf(err, errlen, "session tickets are off (tls.ticket_key_file is empty)");
		return -1;
	}
	f = fopen(path, "re");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strcspn(line, "\r\n");
		unsigned char raw[80];
		lineno++;
		if (len == 0)
			continue;
		if (n == PX_MAX_TKEYS) {
			snprintf(err, errlen, "%s: more than %d keys", path, PX_MAX_TKEYS);
			goto fail;
		}
		if (b64_decode_key(line, len, raw) < 0) {
			snprintf(err, errlen, "%s:%d: not the base64 of 80 bytes", path, lineno);
			OPENSSL_cleanse(line, sizeof(line));
			goto fail;
		}
		memcpy(keys[n].name, raw, 16);
		memcpy(keys[n].hmac, raw + 16, 32);
		memcpy(keys[n].aes, raw + 48, 32);
		OPENSSL_cleanse(raw, sizeof(raw));
		n++;
	}
	OPENSSL_cleanse(line, sizeof(line));
	fclose(f);
	if (n == 0) {
		snprintf(err, errlen, "%s: no keys", path);
		return -1;
	}
	pthread_rwlock_wrlock(&p->tk_lock);
	OPENSSL_cleanse(p->tkeys, sizeof(p->tkeys));
	memcpy(p->tkeys, keys, sizeof(keys[0]) * (size_t)n);
	p->ntkeys = n;
	pthread_rwlock_unlock(&p->tk_lock);
	OPENSSL_cleanse(keys, sizeof(keys));
	return n;
fail:
	fclose(f);
	OPENSSL_cleanse(keys, sizeof(keys));
	return -1;
}

/* Random in-memory key used until the ticket key file exists: tickets then
 * resume on this instance only. */
static int tickets_random(struct px_proc *p)
{
	struct px_tkey k;

	if (RAND_bytes((unsigned char *)&k, sizeof(k)) <= 0)
		return -1;
	pthread_rwlock_wrlock(&p->tk_lock);
	p->tkeys[0] = k;
	p->ntkeys = 1;
	pthread_rwlock_unlock(&p->tk_lock);
	OPENSSL_cleanse(&k, sizeof(k));
	return 0;
}

int px_tls_init(struct px_proc *p, char *err, size_t errlen)
{
	const struct cfg_tls *t = &p->cfg->tls;
	SSL_CTX *ctx;
	char kerr[256];

	pthread_rwlock_init(&p->tk_lock, NULL);
	ctx = SSL_CTX_new_ex(NULL, NULL, TLS_server_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "SSL_CTX_new failed");
		return -1;
	}
	p->ssl_ctx = ctx;
	SSL_CTX_set_app_data(ctx, p);
	if (!SSL_CTX_set_min_proto_version(ctx, t->min_version ? t->min_version : TLS1_2_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
		snprintf(err, errlen, "tls.min_version: not supported");
		return -1;
	}
	/* No renegotiation (a CPU DoS vector and lock traffic); a TCP close
	 * without close_notify is an ordinary EOF for a proxy, not an error;
	 * server cipher preference as every current proxy does. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	/* Partial writes and moving buffers let SSL_write resume from our ring
	 * buffer; released buffers keep idle connections small. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	/* Read-ahead stays off. With it, the handshake can pull the client's
	 * first application record (TLS 1.3 clients send it right behind
	 * Finished) into OpenSSL's buffer; the socket then never raises
	 * another edge-triggered EPOLLIN, and the request waits there until
	 * the idle timeout. It was measured to save read() calls but no
	 * throughput or CPU beyond noise, so it is not worth that hazard. */
	if (t->ciphers[0] && !SSL_CTX_set_cipher_list(ctx, t->ciphers)) {
		snprintf(err, errlen, "tls.ciphers: no usable cipher in '%s'", t->ciphers);
		return -1;
	}
	if (t->ciphersuites[0] && !SSL_CTX_set_ciphersuites(ctx, t->ciphersuites)) {
		snprintf(err, errlen, "tls.ciphersuites: invalid '%s'", t->ciphersuites);
		return -1;
	}
	if (t->groups[0] && !SSL_CTX_set1_groups_list(ctx, t->groups)) {
		snprintf(err, errlen, "tls.groups: invalid '%s'", t->groups);
		return -1;
	}
	p->alpn_len = 0;
	for (int i = 0; i < t->nalpn; i++) {
		size_t l = strlen(t->alpn[i]);
		if (l == 0 || l > 255)
			continue;
		p->alpn_wire[p->alpn_len++] = (unsigned char)l;
		memcpy(p->alpn_wire + p->alpn_len, t->alpn[i], l);
		p->alpn_len += l;
	}
	if (p->alpn_len > 0)
		SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, p);
	SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, p);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"switchyard", 10);
	if (t->session_cache) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	} else {
		/* Stateless tickets only: a per-process cache is never shared
		 * between blue and green, so it would not survive a flip. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	/* One ticket per handshake is enough for a proxy's clients and halves
	 * the ticket cost of TLS 1.3 full handshakes. */
	SSL_CTX_set_num_tickets(ctx, 1);

	p->tickets_on = t->ticket_key_file[0] != '\0';
	if (!p->tickets_on) {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
		log_info("session tickets off: tls.ticket_key_file is empty");
		return 0;
	}
	/* Fetch the ticket cipher once: an implicit fetch per handshake would
	 * take the library context's locks every time. */
	p->tk_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	if (p->tk_cipher == NULL) {
		snprintf(err, errlen, "cannot fetch AES-256-CBC");
		return -1;
	}
	if (px_tickets_load(p, kerr, sizeof(kerr)) < 0) {
		log_warnx("session tickets: %s; using a random key known to this instance only "
		          "until reload-tickets",
		          kerr);
		if (tickets_random(p) < 0) {
			snprintf(err, errlen, "RAND_bytes failed");
			return -1;
		}
	}
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	return 0;
}

void px_tls_free(struct px_proc *p)
{
	SSL_CTX_free(p->ssl_ctx);
	p->ssl_ctx = NULL;
	EVP_CIPHER_free(p->tk_cipher);
	p->tk_cipher = NULL;
	OPENSSL_cleanse(p->tkeys, sizeof(p->tkeys));
	pthread_rwlock_destroy(&p->tk_lock);
}
