/*
 * arrays.c - arrays in tool calls over HTTP: a multipart/form-data request
 * brings JSON arguments (part "args") and .npy parts bound by name, and a
 * client that accepts multipart gets returned arrays back as .npy parts next
 * to the JSON result instead of as nested lists.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "multipart.h"
#include "npy.h"
#include "utf8.h"

static int part_error(sp_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int part_error(sp_error_t *err, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return sp_error_set(err, SP_EINVAL, msg, NULL, NULL);
}

static int is_one_of(const char *ctype, const char *const *list) {
  for (; *list; list++)
    if (strcmp(ctype, *list) == 0) return 1;
  return 0;
}

static const char *const json_types[] = {"", "application/json", "text/plain", NULL};
static const char *const npy_types[] = {"", "application/octet-stream", "application/x-npy",
                                        "application/npy", NULL};

int sp__http_is_multipart_call(sp__req_t *r) {
  const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
  size_t n = ct ? strcspn(ct, "; \t") : 0;
  return n == 19 && strncasecmp(ct, "multipart/form-data", 19) == 0;
}

int sp__http_inputs_parse(sp__req_t *r, sp__http_inputs_t *in, sp_error_t *err) {
  memset(in, 0, sizeof(*in));
  const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Type");
  if (ct == NULL || strncasecmp(ct, "multipart/", 10) != 0) return 0;
  char subtype[32], boundary[SP__MULTIPART_BOUNDARY_MAX + 1], msg[512];
  if (sp__multipart_content_type(ct, subtype, boundary, msg, sizeof(msg)) != 0)
    return part_error(err, "%s", msg);
  if (strcmp(subtype, "form-data") != 0)
    return part_error(err,
                      "Content-Type multipart/%s is not accepted for a call: send "
                      "application/json, or multipart/form-data with an 'args' part and .npy parts",
                      subtype);
  if (sp__multipart_parse(r->body ? r->body : "", r->len, boundary, &in->parts, &in->nparts, msg,
                          sizeof(msg)) != 0)
    return part_error(err, "%s", msg);
  in->arrays = calloc(in->nparts ? in->nparts : 1, sizeof(*in->arrays));
  in->npy = calloc(in->nparts ? in->nparts : 1, sizeof(*in->npy));
  if (in->arrays == NULL || in->npy == NULL)
    return sp_error_setf(err, SP_ENOMEM, "out of memory reading the multipart body");
  const sp__part_t *args = NULL;
  for (size_t i = 0; i < in->nparts; i++) {
    sp__part_t *p = &in->parts[i];
    if (p->name[0] == '\0')
      return part_error(err,
                        "multipart part %zu has no name (Content-Disposition: form-data; "
                        "name=\"ARGUMENT\")",
                        i + 1);
    /* Part names are argument names: text the worker makes Python names of. */
    if (!sp__utf8_valid((const unsigned char *)p->name, strlen(p->name)))
      return part_error(err, "multipart part %zu: its name is not valid UTF-8", i + 1);
    for (size_t j = 0; j < i; j++)
      if (strcmp(in->parts[j].name, p->name) == 0)
        return part_error(err, "part '%s' is given twice", p->name);
    if (strcmp(p->name, "args") == 0) {
      if (!is_one_of(p->ctype, json_types))
        return part_error(err, "part 'args': Content-Type %s, expected application/json", p->ctype);
      args = p;
      continue;
    }
    if (!is_one_of(p->ctype, npy_types))
      return part_error(err,
                        "unknown part '%s': Content-Type %s; a call takes the JSON part 'args' "
                        "and .npy parts (application/octet-stream) named by argument",
                        p->name, p->ctype);
    sp_npy_t *a = &in->npy[in->count];
    if (sp_npy_parse(p->data, p->len, a, msg, sizeof(msg)) != 0)
      return part_error(err, "part '%s'%s%s%s: %s", p->name, p->filename[0] ? " (" : "",
                        p->filename, p->filename[0] ? ")" : "", msg);
    /* Fortran-ordered data goes with its strides: the library copies it to C order. */
    in->arrays[in->count++] = (sp_array_t){.name = p->name,
                                           .dtype = a->dtype,
                                           .ndim = a->ndim,
                                           .shape = a->shape,
                                           .strides = a->fortran_order ? a->strides : NULL,
                                           .data = a->data};
  }
  if (args != NULL) {
    if (memchr(args->data, '\0', args->len) != NULL)
      return part_error(err, "part 'args' contains a NUL byte: not JSON text");
    if ((in->args = strndup(args->data, args->len)) == NULL)
      return sp_error_setf(err, SP_ENOMEM, "out of memory reading the multipart body");
    /* The JSON itself is the library's to judge; only a name given twice is ours. */
    json_t *doc = json_loads(in->args, 0, NULL);
    for (size_t i = 0; json_is_object(doc) && i < in->count; i++)
      if (json_object_get(doc, in->arrays[i].name) != NULL) {
        json_decref(doc);
        return part_error(err, "argument '%s' is given both in part 'args' and as a .npy part",
                          in->arrays[i].name);
      }
    json_decref(doc);
  }
  return 1;
}

void sp__http_inputs_free(sp__http_inputs_t *in) {
  free(in->parts);
  free(in->arrays);
  free(in->npy);
  free(in->args);
  memset(in, 0, sizeof(*in));
}

/* Whether an Accept header names type with a non-zero quality. */
static int accepts(const char *accept, const char *type) {
  size_t tl = strlen(type);
  for (const char *p = accept; p && *p;) {
    while (*p == ' ' || *p == ',') p++;
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n >= tl && strncasecmp(p, type, tl) == 0 && (n == tl || p[tl] == ';' || p[tl] == ' ')) {
      const char *q = p + tl;
      int zero = 0;
      while ((q = strchr(q, ';')) != NULL && q < p + n) {
        q++;
        while (*q == ' ') q++;
        if (strncmp(q, "q=", 2) == 0) zero = strtod(q + 2, NULL) <= 0.0;
      }
      if (!zero) return 1;
    }
    p = end;
  }
  return 0;
}

const char *sp__http_accepts_multipart(sp__req_t *r) {
  const char *a = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
  if (a == NULL) return NULL;
  if (accepts(a, "multipart/form-data")) return "form-data";
  if (accepts(a, "multipart/mixed")) return "mixed";
  return NULL;
}

int sp__http_result_multipart(const sp_result_t *res, const char *subtype, char **body, size_t *len,
                              char *ctype, size_t ctypelen) {
  char boundary[SP__MULTIPART_BOUNDARY_MAX + 1];
  sp__multipart_new_boundary(boundary);
  sp__buf_t b = {0};
  int bad = sp__multipart_part_begin(&b, boundary, "result", NULL, "application/json") ||
            sp__buf_append(&b, res->json, res->len ? res->len : strlen(res->json)) ||
            sp__multipart_part_end(&b);
  for (size_t i = 0; i < res->array_count && !bad; i++) {
    const sp_array_t *a = &res->arrays[i];
    char file[300];
    sp_npy_file_base(a->name, file, sizeof(file) - 4);
    strcat(file, ".npy");
    bad = sp__multipart_part_begin(&b, boundary, a->name, file, "application/octet-stream") ||
          sp_npy_header_write(&b, a->dtype, a->ndim, a->shape) ||
          (a->nbytes && sp__buf_append(&b, a->data, a->nbytes)) || sp__multipart_part_end(&b);
  }
  if (bad || sp__multipart_finish(&b, boundary) != 0) {
    sp__buf_free(&b);
    return SP_ENOMEM;
  }
  snprintf(ctype, ctypelen, "multipart/%s; boundary=%s", subtype, boundary);
  *body = (char *)b.data;
  *len = b.len;
  return 0;
}
