/*
 * A grid client in C: lists the newest jobs of a secured grid over CurveZMQ, using only
 * libzmq, OpenSSL's libcrypto (X25519 and HMAC for the routing-id proof) and
 * include/grid/messages.h (docs/protocol.md, "Security: talking to the grid from C").
 *
 *   list_jobs ENDPOINT SERVER.pub CLIENT.key CLIENT.pub
 *
 * Prints one job id per line and exits 0; on an error_reply prints "error CODE: MESSAGE"
 * and exits 3; when the server refuses the key (ZAP), prints "not authorized" and exits 4.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "grid/messages.h"

static void die(const char *what) {
  fprintf(stderr, "list_jobs: %s\n", what);
  exit(2);
}

static void read_key(const char *file, char out[41]) {
  FILE *f = fopen(file, "r");
  if (!f || !fgets(out, 41, f) || strlen(out) != 40) die("cannot read a 40-character Z85 key");
  fclose(f);
}

static void b64url(const uint8_t *in, size_t n, char *out) {
  static const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
    out[o++] = a[v >> 18 & 63];
    out[o++] = a[v >> 12 & 63];
    if (i + 1 < n) out[o++] = a[v >> 6 & 63];
    if (i + 2 < n) out[o++] = a[v & 63];
  }
  out[o] = 0;
}

/* g1.<pub>.<nonce>.<HMAC-SHA256(X25519(secret, server), "grid-peer-v1" || nonce)[0..16]> */
static void routing_id(const char *sec_z85, const char *pub_z85, const char *server_z85, char *out) {
  uint8_t sec[32], pub[32], srv[32], nonce[9], shared[32], mac[32], msg[12 + 9];
  size_t len = 32;
  unsigned int maclen = 32;
  if (!zmq_z85_decode(sec, sec_z85) || !zmq_z85_decode(pub, pub_z85) || !zmq_z85_decode(srv, server_z85)) die("bad Z85 key");
  if (RAND_bytes(nonce, sizeof nonce) != 1) die("no randomness");
  EVP_PKEY *mine = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sec, 32);
  EVP_PKEY *theirs = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, srv, 32);
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(mine, NULL);
  if (!mine || !theirs || !ctx || EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, theirs) != 1 || EVP_PKEY_derive(ctx, shared, &len) != 1) die("X25519 failed");
  memcpy(msg, "grid-peer-v1", 12);
  memcpy(msg + 12, nonce, 9);
  if (!HMAC(EVP_sha256(), shared, 32, msg, sizeof msg, mac, &maclen)) die("HMAC failed");
  char p[64], n[16], t[32];
  b64url(pub, 32, p);
  b64url(nonce, 9, n);
  b64url(mac, 16, t);
  sprintf(out, "g1.%s.%s.%s", p, n, t);
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(mine);
  EVP_PKEY_free(theirs);
}

int main(int argc, char **argv) {
  if (argc != 5) die("usage: list_jobs ENDPOINT SERVER.pub CLIENT.key CLIENT.pub");
  char server[41], sec[41], pub[41], rid[128];
  read_key(argv[2], server);
  read_key(argv[3], sec);
  read_key(argv[4], pub);
  routing_id(sec, pub, server, rid);

  void *ctx = zmq_ctx_new();
  void *s = zmq_socket(ctx, ZMQ_DEALER);
  int64_t max = GRID_MAX_MESSAGE_BYTES;
  int linger = 0, timeout = 10000;
  zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 40);
  zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
  zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
  zmq_setsockopt(s, ZMQ_ROUTING_ID, rid, strlen(rid));
  zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
  /* a refused key shows as a monitor event, not as a reply */
  zmq_socket_monitor(s, "inproc://monitor", ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
  void *mon = zmq_socket(ctx, ZMQ_PAIR);
  zmq_connect(mon, "inproc://monitor");
  if (zmq_connect(s, argv[1]) != 0) die("connect failed");

  struct job_list_request rq;
  memset(&rq, 0, sizeof rq);
  rq.header.message_type = GRID_MSG_JOB_LIST_REQUEST;
  rq.header.node_uuid_upper = 0x1234567812344123ull;
  rq.header.node_uuid_lower = 0x8123123456789abcull;
  rq.header.header_length = sizeof rq;
  rq.request_uuid_upper = 0x0bad0bad0bad4badull;
  rq.request_uuid_lower = 0x8badc0ffee000001ull;
  rq.limit = 100;
  if (zmq_send(s, &rq, sizeof rq, 0) != (int)sizeof rq) die("send failed");

  zmq_pollitem_t items[] = {{s, 0, ZMQ_POLLIN, 0}, {mon, 0, ZMQ_POLLIN, 0}};
  for (;;) {
    if (zmq_poll(items, 2, timeout) <= 0) die("no answer in time");
    if (items[1].revents & ZMQ_POLLIN) {
      zmq_msg_t ev;
      zmq_msg_init(&ev);
      zmq_msg_recv(&ev, mon, 0);
      uint16_t event;
      memcpy(&event, zmq_msg_data(&ev), 2);
      zmq_msg_close(&ev);
      zmq_msg_init(&ev);
      zmq_msg_recv(&ev, mon, 0); /* the endpoint frame */
      zmq_msg_close(&ev);
      if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        printf("not authorized\n");
        return 4;
      }
    }
    if (items[0].revents & ZMQ_POLLIN) break;
  }
  zmq_msg_t f0, f1;
  zmq_msg_init(&f0);
  zmq_msg_init(&f1);
  if (zmq_msg_recv(&f0, s, 0) < 0) die("receive failed");
  const struct generic_message *h = zmq_msg_data(&f0);
  int more = zmq_msg_more(&f0);
  if (more && zmq_msg_recv(&f1, s, 0) < 0) die("receive failed");
  if (h->message_type == GRID_MSG_ERROR_REPLY) {
    const struct error_reply *e = zmq_msg_data(&f0);
    printf("error %u: %.*s\n", (unsigned)e->error_code, (int)zmq_msg_size(&f1), (const char *)zmq_msg_data(&f1));
    return 3;
  }
  if (h->message_type != GRID_MSG_JOB_LIST_RESPONSE || zmq_msg_size(&f0) != sizeof(struct job_list_response)) die("unexpected answer");
  const struct job_list_response *r = zmq_msg_data(&f0);
  if (zmq_msg_size(&f1) != (size_t)r->num_jobs * 16) die("job_uuids frame of the wrong size");
  const uint64_t *u = zmq_msg_data(&f1);
  for (uint32_t i = 0; i < r->num_jobs; i++) {
    uint64_t a = u[2 * i], b = u[2 * i + 1];
    printf("%08x-%04x-%04x-%04x-%012llx\n", (unsigned)(a >> 32), (unsigned)(a >> 16 & 0xffff), (unsigned)(a & 0xffff), (unsigned)(b >> 48),
           (unsigned long long)(b & 0xffffffffffffull));
  }
  zmq_msg_close(&f0);
  zmq_msg_close(&f1);
  zmq_close(mon);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}
