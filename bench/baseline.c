/*
 * C baseline for the codec bench (bench/codec.ts compiles it with cc -O2 and runs it):
 * "encode" = fill the struct from values and memcpy it into a wire buffer; "decode" = memcpy
 * it out and read every field. The 64 KiB chunk of file_response is passed by pointer, as the
 * TypeScript codec passes the frame through; a second row copies it, for reference.
 * Prints one line per case: "<name> <ns per encode+decode, best of ROUNDS>".
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "grid/messages.h"

#define CHUNK_BYTES (64 * 1024)
/* Minimum time per round; iterations double until reached. The best of ROUNDS is printed,
 * as bench/index.ts does for JavaScript: other load only ever slows a round down. */
#define MIN_RUN_NS 100000000.0
#define ROUNDS 5

/* Keeps the compiler from deleting work whose result is otherwise unused. */
#define KEEP(p) __asm__ volatile("" : : "g"(p) : "memory")

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static unsigned char wire[256];
static unsigned char chunk[CHUNK_BYTES];
static unsigned char chunk_copy[CHUNK_BYTES];
static uint64_t sink;

static void generic(uint64_t i) {
  struct generic_message e = {0};
  e.message_type = GRID_MSG_GENERIC_MESSAGE;
  e.node_uuid_upper = 0x123e4567e89b42d3ull ^ i;
  e.node_uuid_lower = 0xa456426614174000ull + i;
  e.header_length = sizeof e;
  memcpy(wire, &e, sizeof e);
  KEEP(wire);
  struct generic_message d;
  memcpy(&d, wire, sizeof d);
  sink += d.message_type + d.node_uuid_upper + d.node_uuid_lower + d.header_length;
}

static void worker_request(uint64_t i) {
  struct worker_request e = {0};
  e.header.message_type = GRID_MSG_WORKER_REQUEST;
  e.header.node_uuid_upper = 0x123e4567e89b42d3ull ^ i;
  e.header.node_uuid_lower = 0xa456426614174000ull + i;
  e.header.header_length = sizeof e;
  e.job_uuid_upper = 0x6ba7b8109dad11d1ull + i;
  e.job_uuid_lower = 0x80b400c04fd430c8ull ^ i;
  e.program_length = 100 + (i & 7);
  e.num_input_files = 3;
  memcpy(wire, &e, sizeof e);
  KEEP(wire);
  struct worker_request d;
  memcpy(&d, wire, sizeof d);
  sink += d.header.message_type + d.header.node_uuid_upper + d.header.node_uuid_lower + d.header.header_length + d.job_uuid_upper + d.job_uuid_lower + d.program_length + d.num_input_files;
}

static const unsigned char *frame1;

static void file_response(uint64_t i, int copy) {
  struct file_response e = {0};
  e.header.message_type = GRID_MSG_FILE_RESPONSE;
  e.header.node_uuid_upper = 0x123e4567e89b42d3ull ^ i;
  e.header.node_uuid_lower = 0xa456426614174000ull + i;
  e.header.header_length = sizeof e;
  e.file_uuid_upper = 0x6ba7b8109dad11d1ull + i;
  e.file_uuid_lower = 0x80b400c04fd430c8ull ^ i;
  e.file_length = CHUNK_BYTES;
  memcpy(wire, &e, sizeof e);
  frame1 = chunk;
  KEEP(wire);
  KEEP(frame1);
  struct file_response d;
  memcpy(&d, wire, sizeof d);
  if (copy) {
    memcpy(chunk_copy, frame1, d.file_length);
    KEEP(chunk_copy);
  }
  sink += d.header.message_type + d.header.node_uuid_upper + d.header.node_uuid_lower + d.file_uuid_upper + d.file_uuid_lower + d.file_length + frame1[i & (CHUNK_BYTES - 1)];
}

static void run(const char *name, int which) {
  uint64_t n = 1024;
  double best = 0;
  int rounds = 0;
  for (;;) {
    double t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
      switch (which) {
        case 0: generic(i); break;
        case 1: worker_request(i); break;
        case 2: file_response(i, 0); break;
        default: file_response(i, 1); break;
      }
    }
    double dt = now_ns() - t0;
    if (dt < MIN_RUN_NS) {
      n *= 2;
      continue;
    }
    if (rounds == 0 || dt / (double)n < best) best = dt / (double)n;
    if (++rounds == ROUNDS) {
      printf("%s %.3f\n", name, best);
      return;
    }
  }
}

int main(void) {
  for (int i = 0; i < CHUNK_BYTES; i++) chunk[i] = (unsigned char)i;
  run("generic_message", 0);
  run("worker_request", 1);
  run("file_response_64k", 2);
  run("file_response_64k_copied", 3);
  fprintf(stderr, "sink %llu\n", (unsigned long long)sink);
  return 0;
}
