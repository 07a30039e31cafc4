/*
 * arrays.c - arrays on the command line: `exec --array NAME=FILE.npy` loads
 * .npy files as array arguments, and `--out DIR` writes the arrays a tool
 * returns as DIR/<path>.npy and prints the rest of the result with each
 * array's place naming its file. Shared by the local and the --url exec.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "npy.h"
#include "utf8.h"

/* Takes "--array X", "--array=X", "--out X" and "--out=X" out of argv[1..], and
 * the session options (session.c), which may also stand after the arguments. */
int sp_cli_exec_options(int *argc, char **argv, sp_cli_opts_t *o) {
  int w = 1;
  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i], *val = NULL;
    int is_array = 0;
    if (strcmp(a, "--") == 0) { /* everything after is positional */
      while (i < *argc) argv[w++] = argv[i++];
      break;
    }
    int taken = sp_cli_session_option(*argc, argv, &i, o);
    if (taken < 0) return SP_EXIT_USAGE;
    if (taken > 0) continue;
    if (strcmp(a, "--array") == 0 || strcmp(a, "--out") == 0) {
      if (i + 1 >= *argc) {
        fprintf(stderr, "snakepit: %s needs a value (%s)\n", a,
                a[2] == 'a' ? "--array NAME=FILE.npy" : "--out DIR");
        return SP_EXIT_USAGE;
      }
      is_array = a[2] == 'a';
      val = argv[++i];
    } else if (strncmp(a, "--array=", 8) == 0) {
      is_array = 1;
      val = a + 8;
    } else if (strncmp(a, "--out=", 6) == 0) {
      val = a + 6;
    } else {
      argv[w++] = argv[i];
      continue;
    }
    if (!is_array) {
      if (*val == '\0') {
        fprintf(stderr, "snakepit: --out needs a directory\n");
        return SP_EXIT_USAGE;
      }
      o->out_dir = val;
      continue;
    }
    const char *eq = strchr(val, '=');
    if (eq == NULL || eq == val || eq[1] == '\0') {
      fprintf(stderr, "snakepit: --array needs NAME=FILE.npy, got '%s'\n", val);
      return SP_EXIT_USAGE;
    }
    const char **grown = realloc(o->arrays, (size_t)(o->array_count + 1) * sizeof(*grown));
    if (grown == NULL) return SP_EXIT_WORKER;
    o->arrays = grown;
    o->arrays[o->array_count++] = val;
  }
  *argc = w;
  argv[w] = NULL;
  return -1;
}

int sp_cli_read_file(const char *path, char **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  *data = NULL;
  *len = 0;
  if (f == NULL) return -1;
  sp__buf_t b = {0};
  char chunk[65536];
  size_t n;
  int rc = 0;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    if (sp__buf_append(&b, chunk, n) != 0) {
      errno = ENOMEM;
      rc = -1;
      break;
    }
  if (ferror(f)) rc = -1;
  fclose(f);
  if (rc != 0) {
    sp__buf_free(&b);
    return -1;
  }
  *data = (char *)b.data;
  *len = b.len;
  return 0;
}

int sp_cli_inputs_load(const sp_cli_opts_t *o, sp_cli_inputs_t *in) {
  memset(in, 0, sizeof(*in));
  if (o->array_count == 0) return -1;
  size_t n = (size_t)o->array_count;
  in->arrays = calloc(n, sizeof(*in->arrays));
  in->npy = calloc(n, sizeof(*in->npy));
  in->files = calloc(n, sizeof(*in->files));
  in->names = calloc(n, sizeof(*in->names));
  if (!in->arrays || !in->npy || !in->files || !in->names) return SP_EXIT_WORKER;
  in->count = n;
  for (size_t i = 0; i < n; i++) {
    const char *spec = o->arrays[i], *eq = strchr(spec, '='), *path = eq + 1;
    if ((in->names[i] = strndup(spec, (size_t)(eq - spec))) == NULL) return SP_EXIT_WORKER;
    if (!sp__utf8_valid((const unsigned char *)in->names[i], strlen(in->names[i]))) {
      fprintf(stderr, "snakepit: --array: the name before '=' is not valid UTF-8\n");
      return SP_EXIT_USAGE;
    }
    for (size_t j = 0; j < i; j++)
      if (strcmp(in->names[j], in->names[i]) == 0) {
        fprintf(stderr, "snakepit: --array %s is given twice\n", in->names[i]);
        return SP_EXIT_USAGE;
      }
    size_t len;
    if (sp_cli_read_file(path, &in->files[i], &len) != 0) {
      fprintf(stderr, "snakepit: --array %s: cannot read %s: %s\n", in->names[i], path,
              strerror(errno));
      return SP_EXIT_USAGE;
    }
    char msg[512];
    if (sp_npy_parse(in->files[i], len, &in->npy[i], msg, sizeof(msg)) != 0) {
      fprintf(stderr, "snakepit: --array %s: %s: %s\n", in->names[i], path, msg);
      return SP_EXIT_INVALID;
    }
    const sp_npy_t *a = &in->npy[i];
    /* Fortran-ordered data goes with its strides: the library copies it to C order. */
    in->arrays[i] = (sp_array_t){.name = in->names[i],
                                 .dtype = a->dtype,
                                 .ndim = a->ndim,
                                 .shape = a->shape,
                                 .strides = a->fortran_order ? a->strides : NULL,
                                 .data = a->data};
  }
  return -1;
}

void sp_cli_inputs_free(sp_cli_inputs_t *in) {
  for (size_t i = 0; i < in->count; i++) {
    free(in->files ? in->files[i] : NULL);
    free(in->names ? in->names[i] : NULL);
  }
  free(in->arrays);
  free(in->npy);
  free(in->files);
  free(in->names);
  memset(in, 0, sizeof(*in));
}

/* DIR/<path>.npy for an array named path ("items/0" -> "items.0.npy"); a
 * name that another array already took gets the array's index added. */
static char *out_path(const char *dir, const char *name, size_t index, json_t *taken) {
  size_t n = strlen(name) + 2;
  char *base = malloc(n + 32);
  if (base == NULL) return NULL;
  sp_npy_file_base(name, base, n);
  if (json_object_get(taken, base) != NULL) sprintf(base + strlen(base), "~%zu", index);
  json_object_set_new(taken, base, json_true());
  /* "out/" and "out" name the same directory: one slash before the file. */
  int dl = (int)strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/') dl--;
  size_t len = (size_t)dl + strlen(base) + 6;
  char *path = malloc(len);
  if (path) snprintf(path, len, "%.*s%s%s.npy", dl, dir, dir[dl - 1] == '/' ? "" : "/", base);
  free(base);
  return path;
}

static int write_npy(const char *path, const sp_array_t *a) {
  sp__buf_t b = {0};
  int rc = sp_npy_header_write(&b, a->dtype, a->ndim, a->shape);
  FILE *f = rc == 0 ? fopen(path, "wb") : NULL;
  if (f == NULL) {
    sp__buf_free(&b);
    return -1;
  }
  int ok = fwrite(b.data, 1, b.len, f) == b.len &&
           (a->nbytes == 0 || fwrite(a->data, 1, a->nbytes, f) == a->nbytes);
  ok = (fclose(f) == 0) && ok;
  sp__buf_free(&b);
  return ok ? 0 : -1;
}

/* Length of an {"$array": INDEX} place at p (INDEX < count, any spacing), or 0. */
static size_t array_place(const char *p, size_t count, size_t *index) {
  const char *s = p + 1;
  s += strspn(s, " \t\r\n");
  if (strncmp(s, "\"$array\"", 8) != 0) return 0;
  s += 8;
  s += strspn(s, " \t\r\n");
  if (*s++ != ':') return 0;
  s += strspn(s, " \t\r\n");
  size_t digits = strspn(s, "0123456789");
  if (digits == 0 || digits > 18) return 0;
  *index = strtoull(s, NULL, 10);
  s += digits;
  s += strspn(s, " \t\r\n");
  return *s == '}' && *index < count ? (size_t)(s + 1 - p) : 0;
}

/*
 * Copies result JSON text with each {"$array": INDEX} place replaced by
 * descr[INDEX]. The text is edited, not re-encoded, so every other value
 * (numbers above all) prints exactly as the tool wrote it. 0 or -1.
 */
static int replace_places(const char *json, json_t *descr, sp__buf_t *out) {
  int in_string = 0;
  for (const char *p = json; *p; p++) {
    size_t index, n;
    if (in_string) {
      if (*p == '\\' && p[1]) {
        if (sp__buf_append(out, p, 2) != 0) return -1;
        p++;
        continue;
      }
      in_string = *p != '"';
    } else if (*p == '"') {
      in_string = 1;
    } else if (*p == '{' && (n = array_place(p, json_array_size(descr), &index)) > 0) {
      char *d = json_dumps(json_array_get(descr, index), JSON_COMPACT);
      int bad = d == NULL || sp__buf_append(out, d, strlen(d)) != 0;
      free(d);
      if (bad) return -1;
      p += n - 1;
      continue;
    }
    if (sp__buf_append(out, p, 1) != 0) return -1;
  }
  return sp__buf_append_str(out, "", 0);
}

int sp_cli_print_result(const char *json, const sp_array_t *arrays, size_t count,
                        const char *out_dir) {
  if (out_dir == NULL || count == 0) {
    sp_cli_print_json(json);
    return SP_EXIT_OK;
  }
  if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "snakepit: --out %s: cannot create the directory: %s\n", out_dir,
            strerror(errno));
    return SP_EXIT_USAGE;
  }
  json_t *descr = json_array(), *taken = json_object();
  int rc = SP_EXIT_OK;
  for (size_t i = 0; i < count && rc == SP_EXIT_OK; i++) {
    const sp_array_t *a = &arrays[i];
    char *path = out_path(out_dir, a->name ? a->name : "", i, taken);
    if (path == NULL || write_npy(path, a) != 0) {
      fprintf(stderr, "snakepit: --out: cannot write %s: %s\n", path ? path : out_dir,
              strerror(errno));
      rc = SP_EXIT_USAGE;
    } else {
      json_t *shape = json_array();
      for (int d = 0; d < a->ndim; d++) json_array_append_new(shape, json_integer(a->shape[d]));
      json_array_append_new(descr, json_pack("{s:s, s:s, s:o}", "$array", path, "dtype",
                                             sp_dtype_name(a->dtype), "shape", shape));
    }
    free(path);
  }
  sp__buf_t text = {0};
  if (rc == SP_EXIT_OK && replace_places(json, descr, &text) != 0) {
    fprintf(stderr, "snakepit: out of memory printing the result\n");
    rc = SP_EXIT_WORKER;
  }
  if (rc == SP_EXIT_OK) sp_cli_print_json((const char *)text.data);
  sp__buf_free(&text);
  json_decref(descr);
  json_decref(taken);
  return rc;
}
