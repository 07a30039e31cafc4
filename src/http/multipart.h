/*
 * multipart.h - multipart bodies (RFC 2046, form-data of RFC 7578) as arrays
 * travel over HTTP: parsed from a complete body and built into a buffer. Used
 * by `snakepit serve` for requests and replies and by the --url client.
 */
#ifndef SP_HTTP_MULTIPART_H
#define SP_HTTP_MULTIPART_H

#include <stddef.h>

#include "buf.h"

/** Most parts one body may hold. */
#define SP__MULTIPART_MAX_PARTS 1024

/** Longest boundary RFC 2046 allows. */
#define SP__MULTIPART_BOUNDARY_MAX 70

/** One part: its Content-Disposition name and filename, Content-Type and data. */
typedef struct sp__part_s {
  char name[256];     /* "" when the part has none */
  char filename[256]; /* "" when absent */
  char ctype[128];    /* Content-Type without parameters, lower case; "" when absent */
  char *data;         /* points into the parsed body */
  size_t len;
} sp__part_t;

/**
 * The boundary of a Content-Type value "multipart/SUBTYPE; boundary=...":
 * copies SUBTYPE (lower case, e.g. "form-data") into subtype and the boundary
 * into boundary. Returns 0, or -1 when the value is not multipart or has no
 * valid boundary (msg says which).
 */
int sp__multipart_content_type(const char *value, char subtype[32],
                               char boundary[SP__MULTIPART_BOUNDARY_MAX + 1], char *msg,
                               size_t msglen);

/**
 * Splits a complete body into parts. *parts (free with free()) points into
 * body, which must outlive it. Returns 0, or -1 with what is wrong and where
 * in msg (a missing delimiter, a part without headers end, too many parts).
 */
int sp__multipart_parse(char *body, size_t len, const char *boundary, sp__part_t **parts,
                        size_t *count, char *msg, size_t msglen);

/** A fresh random boundary (32 hex digits after a fixed prefix). */
void sp__multipart_new_boundary(char boundary[SP__MULTIPART_BOUNDARY_MAX + 1]);

/**
 * Appends a part's delimiter and headers (Content-Disposition: form-data with
 * name and, when non-NULL, filename; Content-Type ctype); the caller appends
 * the data and then calls sp__multipart_part_end(). 0, or -1 without memory.
 */
int sp__multipart_part_begin(sp__buf_t *b, const char *boundary, const char *name,
                             const char *filename, const char *ctype);
/** Ends the part begun last. 0 or -1. */
int sp__multipart_part_end(sp__buf_t *b);
/** Appends the closing delimiter. 0 or -1. */
int sp__multipart_finish(sp__buf_t *b, const char *boundary);

#endif
