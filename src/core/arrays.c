/*
 * arrays.c - a call's input arrays into shared memory (or inline), and a
 * result's arrays into the caller's views (arrays.h).
 *
 * Inputs are placed on the calling thread, so an 8 MB copy never stalls the
 * loop thread: into a block of the pool's input region (one memcpy, or an
 * element-wise gather for strided data), or nowhere at all when the caller
 * allocated the data there with sp_array_alloc. When the region has no room
 * the bytes go inline in the CALL frame, bounded by max_frame_bytes.
 *
 * A result's shared arrays stay in the worker's output region: the caller gets
 * pointers into the manager's mapping of it, and sp_result_free() frees the
 * blocks through the region's own allocator (no message to the worker, which
 * may have died meanwhile: the mapping lives as long as a result holds it).
 */
#include "arrays.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "utf8.h"

/* ---- inputs ---------------------------------------------------------------- */

/* Copies a strided array into dst, C order. */
static void gather(uint8_t *dst, const uint8_t *src, int ndim, const int64_t *shape,
                   const int64_t *strides, size_t item) {
  if (ndim == 0) {
    memcpy(dst, src, item);
    return;
  }
  size_t inner = item;
  for (int k = 1; k < ndim; k++) inner *= (size_t)shape[k];
  if (ndim == 1 && strides[0] == (int64_t)item) {
    memcpy(dst, src, item * (size_t)shape[0]);
    return;
  }
  for (int64_t i = 0; i < shape[0]; i++)
    gather(dst + (size_t)i * inner, src + i * strides[0], ndim - 1, shape + 1, strides + 1, item);
}

/* Whether strides (NULL = C order) describe C-contiguous data. */
static int contiguous(int ndim, const int64_t *shape, const int64_t *strides, size_t item) {
  if (strides == NULL) return 1;
  int64_t want = (int64_t)item;
  for (int k = ndim - 1; k >= 0; k--) {
    if (shape[k] != 1 && strides[k] != want) return 0;
    want *= shape[k];
  }
  return 1;
}

static int bad_array(sp_error_t *err, const char *pool, const char *tool, size_t i,
                     const sp_array_t *a, const char *what) {
  return sp__error_set(err, SP_EBADARGS, "array %zu ('%.200s') for tool '%s' in pool '%s': %s", i,
                       a->name ? a->name : "", tool, pool, what);
}

/* Names the JSON arguments may not share with arrays. */
static int check_names(const char *pool, const char *tool, const sp_array_t *arrays, size_t n,
                       const char *args, size_t args_len, sp_error_t *err) {
  json_t *o = json_loadb(args, args_len, 0, NULL);
  for (size_t i = 0; i < n; i++) {
    const sp_array_t *a = &arrays[i];
    size_t len = a->name ? strlen(a->name) : 0;
    int rc = 0;
    if (len == 0 || len > SP__MAX_ARRAY_NAME)
      rc = bad_array(err, pool, tool, i, a, "its name must be 1 to 1024 bytes");
    else if (!sp__utf8_valid((const unsigned char *)a->name, len))
      rc = bad_array(err, pool, tool, i, a, "its name is not valid UTF-8");
    else if (json_object_get(o, a->name) != NULL)
      rc = bad_array(err, pool, tool, i, a, "an argument of that name is also in the JSON arguments");
    for (size_t k = 0; rc == 0 && k < i; k++)
      if (strcmp(arrays[k].name, a->name) == 0)
        rc = bad_array(err, pool, tool, i, a, "another array has the same name");
    if (rc != 0) {
      json_decref(o);
      return rc;
    }
  }
  json_decref(o);
  return 0;
}

void sp__inputs_release(sp__shm_t *region, uint64_t *owned, size_t nowned) {
  for (size_t i = 0; i < nowned; i++) sp__shm_free(region, owned[i]);
}

void sp__inputs_clear(sp__inputs_t *in, uint64_t **owned, size_t *nowned) {
  for (size_t i = 0; i < in->ntmp; i++) free(in->tmp[i]);
  free(in->tmp);
  free(in->descs);
  if (owned != NULL) {
    *owned = in->owned;
    *nowned = in->nowned;
  } else {
    free(in->owned);
  }
  memset(in, 0, sizeof(*in));
}

int sp__inputs_prepare(sp__shm_t *region, const char *pool, const char *tool,
                       const sp_array_t *arrays, size_t n, const char *args, size_t args_len,
                       size_t body_before, size_t max_body, sp__inputs_t *in, sp_error_t *err) {
  memset(in, 0, sizeof(*in));
  if (n > SP__MAX_ARRAYS)
    return sp__error_set(err, SP_EINVAL, "%zu arrays for tool '%s': at most %d per call", n, tool,
                         SP__MAX_ARRAYS);
  int rc = check_names(pool, tool, arrays, n, args, args_len, err);
  if (rc != 0) return rc;
  in->descs = calloc(n, sizeof(*in->descs));
  in->tmp = calloc(n, sizeof(*in->tmp));
  in->owned = calloc(n, sizeof(*in->owned));
  if (in->descs == NULL || in->tmp == NULL || in->owned == NULL) {
    rc = sp__error_set(err, SP_ENOMEM, "out of memory preparing arrays");
    goto fail;
  }
  in->n = n;
  uint64_t shared = 0, inline_bytes = 0;
  for (size_t i = 0; i < n; i++) {
    const sp_array_t *a = &arrays[i];
    sp__array_desc_t *d = &in->descs[i];
    if (a->ndim < 0 || a->ndim > SP_MAX_NDIM || (a->ndim > 0 && a->shape == NULL)) {
      rc = bad_array(err, pool, tool, i, a, "ndim must be 0..32 with a shape of that many sizes");
      goto fail;
    }
    int64_t nb = sp__array_nbytes((int)a->dtype, a->ndim, a->shape);
    if (nb < 0) {
      rc = bad_array(err, pool, tool, i, a,
                     sp_dtype_size((int)a->dtype) == 0 ? "unknown dtype"
                                                       : "a size is negative or the total overflows");
      goto fail;
    }
    if (a->data == NULL && nb > 0) {
      rc = bad_array(err, pool, tool, i, a, "data is NULL");
      goto fail;
    }
    size_t item = sp_dtype_size((int)a->dtype);
    d->name = a->name;
    d->name_len = strlen(a->name);
    d->dtype = (int)a->dtype;
    d->ndim = a->ndim;
    d->nbytes = (uint64_t)nb;
    if (a->ndim > 0) memcpy(d->shape, a->shape, (size_t)a->ndim * sizeof(int64_t));
    int contig = contiguous(a->ndim, a->shape, a->strides, item);
    const uint8_t *src = a->data;
    /* Already in the region (sp_array_alloc): read where it is. */
    if (contig && nb > 0 && region != NULL && src >= region->base &&
        sp__shm_contains(region, (uint64_t)(src - region->base), (uint64_t)nb)) {
      d->where = SP__ARR_SHARED;
      d->offset = (uint64_t)(src - region->base);
      continue;
    }
    uint64_t off;
    if (nb > 0 && region != NULL && sp__shm_alloc(region, (size_t)nb, &off) == 0) {
      if (contig) memcpy(region->base + off, src, (size_t)nb);
      else gather(region->base + off, src, a->ndim, a->shape, a->strides, item);
      in->owned[in->nowned++] = off;
      d->where = SP__ARR_SHARED;
      d->offset = off;
      shared += (uint64_t)nb;
      continue;
    }
    d->where = SP__ARR_INLINE;
    d->data = src;
    inline_bytes += (uint64_t)nb;
    if (!contig) {
      void *copy = malloc(nb > 0 ? (size_t)nb : 1);
      if (copy == NULL) {
        rc = sp__error_set(err, SP_ENOMEM, "out of memory copying array '%s'", a->name);
        goto fail;
      }
      gather(copy, src, a->ndim, a->shape, a->strides, item);
      in->tmp[in->ntmp++] = copy;
      d->data = copy;
    }
  }
  in->extra = sp__arrays_size(in->descs, n);
  if (body_before + in->extra > max_body) {
    size_t used = 0, largest = 0;
    if (region != NULL) sp__shm_usage(region, &used, &largest);
    rc = sp__error_set(err, SP_ETOOLARGE,
                       "arrays for tool '%s' in pool '%s': %llu bytes did not fit in the pool's "
                       "shared memory (max_shared_memory %zu bytes, largest free block %zu) and "
                       "%zu bytes inline exceed max_frame_bytes (%zu); raise max_shared_memory "
                       "(or max_frame_bytes) of pool '%s'",
                       tool, pool, (unsigned long long)inline_bytes, region ? region->size : 0,
                       largest, body_before + in->extra, max_body, pool);
    goto fail;
  }
  (void)shared;
  return 0;
fail:
  sp__inputs_release(region, in->owned, in->nowned);
  sp__inputs_clear(in, NULL, NULL);
  return rc;
}

void sp__inputs_encode(sp__inputs_t *in, uint8_t *dst) {
  sp__arrays_write(dst, in->descs, in->n);
}

/* ---- results --------------------------------------------------------------- */

/* What res->priv_ holds: one allocation with the views, shapes, names and
 * inline bytes, plus the pinned blocks of the region. */
typedef struct held_s {
  sp__shm_t *region;
  uint64_t *pins;
  size_t npins;
} held_t;

static size_t align8(size_t n) { return (n + 7u) & ~(size_t)7u; }

void sp__result_arrays_discard(sp__shm_t *region, const uint8_t *part, size_t len) {
  /* Only the table's well-formed prefix is trusted: parse as far as it goes. */
  sp__array_desc_t *d = calloc(SP__MAX_ARRAYS, sizeof(*d));
  size_t n = 0;
  const uint8_t *base;
  if (d != NULL && sp__arrays_parse(part, len, region ? region->size : 0, d, SP__MAX_ARRAYS, &n,
                                    &base) == 0) {
    for (size_t i = 0; i < n; i++)
      if (d[i].where == SP__ARR_SHARED) sp__shm_free(region, d[i].offset);
  }
  free(d);
}

int sp__result_arrays(sp__shm_t *region, const uint8_t *part, size_t len, sp_result_t *res) {
  size_t cap = len / 24 + 1; /* every entry takes at least 24 bytes */
  if (cap > SP__MAX_ARRAYS) cap = SP__MAX_ARRAYS;
  sp__array_desc_t *d = calloc(cap, sizeof(*d));
  if (d == NULL) return SP_ENOMEM;
  size_t n = 0;
  const uint8_t *inline_base;
  int rc = sp__arrays_parse(part, len, region ? region->size : 0, d, cap, &n, &inline_base);
  if (rc != 0) {
    free(d);
    return rc;
  }
  size_t size = align8(sizeof(held_t)) + align8(n * sizeof(sp_array_t)) + n * sizeof(uint64_t);
  size_t dims = 0, names = 0, inline_bytes = 0;
  for (size_t i = 0; i < n; i++) {
    dims += (size_t)d[i].ndim;
    names += d[i].name_len + 1;
    if (d[i].where == SP__ARR_INLINE) inline_bytes += align8((size_t)d[i].nbytes);
  }
  size += align8(dims * sizeof(int64_t)) + align8(names) + 64 + inline_bytes;
  uint8_t *block = malloc(size);
  if (block == NULL) {
    free(d);
    return SP_ENOMEM;
  }
  held_t *h = (held_t *)block;
  sp_array_t *arr = (sp_array_t *)(block + align8(sizeof(held_t)));
  h->pins = (uint64_t *)((uint8_t *)arr + align8(n * sizeof(sp_array_t)));
  int64_t *shape = (int64_t *)(h->pins + n);
  char *name = (char *)shape + align8(dims * sizeof(int64_t));
  uint8_t *data = (uint8_t *)name + align8(names);
  data += (64 - ((uintptr_t)data & 63)) & 63; /* inline copies start 64-byte aligned */
  h->region = NULL;
  h->npins = 0;
  for (size_t i = 0; i < n; i++) {
    memset(&arr[i], 0, sizeof(arr[i]));
    sp__array_view_from_desc(&arr[i], &d[i], &name, &shape);
    arr[i].nbytes = (size_t)d[i].nbytes;
    if (d[i].where == SP__ARR_SHARED) {
      arr[i].data = region->base + d[i].offset;
      h->pins[h->npins++] = d[i].offset;
    } else {
      if (d[i].nbytes > 0) memcpy(data, inline_base + d[i].offset, (size_t)d[i].nbytes);
      arr[i].data = data;
      data += align8((size_t)d[i].nbytes);
    }
  }
  if (h->npins > 0) {
    h->region = region;
    sp__shm_ref(region);
  }
  free(d);
  res->arrays = arr;
  res->array_count = n;
  res->priv_ = h;
  return 0;
}

void sp__result_arrays_free(sp_result_t *res) {
  held_t *h = res->priv_;
  if (h != NULL) {
    for (size_t i = 0; i < h->npins; i++) sp__shm_free(h->region, h->pins[i]);
    sp__shm_unref(h->region);
    free(h);
  }
  res->priv_ = NULL;
  res->arrays = NULL;
  res->array_count = 0;
}
