/*
 * cluster.c - the commands that reach pools through NATS (--nats URL): exec
 * and tools POOL run in main.c on a runtime whose only pool is the remote one
 * (sp_cli_cluster_start: the same sp_execute() path an application uses);
 * stats, pools and nodes ask the nodes themselves (sp_cluster_nodes_json());
 * submit and result are the durable jobs.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int sp_cli_nats_option(int ch, const char *arg, sp_cli_opts_t *o) {
  o->nats.size = sizeof(o->nats);
  switch (ch) {
    case SP_CLI_OPT_NATS: o->nats.url = arg; return 1;
    case SP_CLI_OPT_NATS_TOKEN: o->nats.token = arg; return 1;
    case SP_CLI_OPT_NATS_USER: o->nats.user = arg; return 1;
    case SP_CLI_OPT_NATS_PASSWORD: o->nats.password = arg; return 1;
    case SP_CLI_OPT_NATS_CREDS: o->nats.creds_file = arg; return 1;
    case SP_CLI_OPT_NATS_CA: o->nats.ca_file = arg; return 1;
    case SP_CLI_OPT_NATS_CERT: o->nats.cert_file = arg; return 1;
    case SP_CLI_OPT_NATS_KEY: o->nats.key_file = arg; return 1;
    case SP_CLI_OPT_NATS_NAME: o->nats_name = arg; return 1;
    case SP_CLI_OPT_JOB_ID: o->job_id = arg; return 1;
    default: return 0;
  }
}

/* YAML of a runtime whose one pool is `pool` on the NATS server of o. */
static int remote_yaml(const sp_cli_opts_t *o, const char *pool, char *buf, size_t cap) {
  size_t len = 0;
  const char *keys[] = {"remote", "remote_token", "remote_user", "remote_password",
                        "remote_creds", "remote_ca", "remote_cert", "remote_key"};
  const char *vals[] = {o->nats.url, o->nats.token, o->nats.user, o->nats.password,
                        o->nats.creds_file, o->nats.ca_file, o->nats.cert_file,
                        o->nats.key_file};
  if (sp_cli_yaml_add(buf, cap, &len, "pools:\n  - name: ") || sp_cli_yaml_quote(buf, cap, &len, pool))
    return -1;
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
    if (vals[i] == NULL) continue;
    if (sp_cli_yaml_add(buf, cap, &len, "\n    ") || sp_cli_yaml_add(buf, cap, &len, keys[i]) ||
        sp_cli_yaml_add(buf, cap, &len, ": ") || sp_cli_yaml_quote(buf, cap, &len, vals[i]))
      return -1;
  }
  return sp_cli_yaml_add(buf, cap, &len, "\n");
}

int sp_cli_cluster_start(const sp_cli_opts_t *o, const char *pool, sp_runtime_t **rt,
                         sp_error_t *err) {
  char yaml[SP_CLI_YAML_CAP];
  if (remote_yaml(o, pool, yaml, sizeof(yaml)) != 0)
    return sp_error_setf(err, SP_EINVAL, "the pool name or a NATS option holds control "
                         "characters or is too long");
  return sp_runtime_start_yaml(rt, yaml, strlen(yaml), "--nats", err);
}

static int nodes_doc(const sp_cli_opts_t *o, json_t **doc) {
  char *json = NULL;
  sp_error_t err;
  sp_nats_opts_t no = o->nats;
  if (o->timeout_ms > 0) no.timeout_ms = o->timeout_ms;
  if (sp_cluster_nodes_json(&no, &json, &err) != 0) return sp_cli_report(&err);
  *doc = json_loads(json, 0, NULL);
  sp_free(json);
  return -1;
}

/* `nodes`: one line per node, then a line per pool it serves. */
static void print_nodes(json_t *doc) {
  json_t *nodes = json_object_get(doc, "nodes");
  size_t i, k;
  json_t *n, *p;
  if (json_array_size(nodes) == 0) {
    printf("no node answered\n");
    return;
  }
  printf("%-24s %-22s %-16s %-8s %s\n", "NODE", "ID", "HOST", "VERSION", "STATE");
  json_array_foreach(nodes, i, n) {
    printf("%-24s %-22s %-16s %-8s %s\n", json_string_value(json_object_get(n, "name")),
           json_string_value(json_object_get(n, "id")),
           json_string_value(json_object_get(n, "host")),
           json_string_value(json_object_get(n, "version")),
           json_is_true(json_object_get(n, "draining")) ? "draining" : "serving");
    json_array_foreach(json_object_get(n, "pools"), k, p) {
      printf("  pool %-18s capacity %-4lld in flight %-4lld calls %-8lld errors %lld\n",
             json_string_value(json_object_get(p, "name")),
             (long long)json_integer_value(json_object_get(p, "capacity")),
             (long long)json_integer_value(json_object_get(p, "in_flight")),
             (long long)json_integer_value(json_object_get(p, "calls")),
             (long long)json_integer_value(json_object_get(p, "errors")));
    }
  }
}

/* `pools`: the names served by any node, once each. */
static json_t *pool_names(json_t *doc) {
  json_t *names = json_array();
  size_t i, k, j;
  json_t *n, *p, *have;
  json_array_foreach(json_object_get(doc, "nodes"), i, n) {
    json_array_foreach(json_object_get(n, "pools"), k, p) {
      int seen = 0;
      json_array_foreach(names, j, have) seen |= json_equal(have, json_object_get(p, "name"));
      if (!seen) json_array_append(names, json_object_get(p, "name"));
    }
  }
  return names;
}

/* `stats [POOL]`: every node's statistics of its pools (of POOL only). */
static int print_stats(const sp_cli_opts_t *o, json_t *doc, const char *pool) {
  size_t i, k;
  json_t *n, *p;
  json_t *out = json_array();
  json_array_foreach(json_object_get(doc, "nodes"), i, n) {
    json_t *pools = json_array();
    json_array_foreach(json_object_get(n, "pools"), k, p) {
      if (pool && strcmp(pool, json_string_value(json_object_get(p, "name"))) != 0) continue;
      json_array_append(pools, json_object_get(p, "stats"));
    }
    if (json_array_size(pools) > 0)
      json_array_append_new(out, json_pack("{s:O, s:O, s:o}", "node", json_object_get(n, "name"),
                                           "id", json_object_get(n, "id"), "pools", pools));
    else
      json_decref(pools);
  }
  int rc = SP_EXIT_OK;
  if (json_array_size(out) == 0) {
    fprintf(stderr, "snakepit: %s%s%s\n", pool ? "no node serves pool '" : "no node answered",
            pool ? pool : "", pool ? "'" : "");
    rc = SP_EXIT_INVALID;
  } else if (o->json || !isatty(STDOUT_FILENO)) {
    char *text = json_dumps(out, JSON_INDENT(2));
    puts(text);
    free(text);
  } else {
    json_array_foreach(out, i, n) {
      json_t *one = json_pack("{s:O}", "pools", json_object_get(n, "pools"));
      char *text = json_dumps(one, 0);
      json_decref(one);
      char *table = NULL;
      sp_error_t err;
      printf("node %s (%s)\n", json_string_value(json_object_get(n, "node")),
             json_string_value(json_object_get(n, "id")));
      if (sp_stats_text(text, 0, &table, &err) == 0) fputs(table, stdout);
      else sp_error_free(&err);
      sp_free(table);
      free(text);
    }
  }
  json_decref(out);
  return rc;
}

/* The tools of one pool, for `tools` without a POOL. */
static int cmd_tools(const sp_cli_opts_t *o, const char *pool) {
  sp_runtime_t *rt = NULL;
  char *json = NULL;
  sp_error_t err;
  int rc;
  if (sp_cli_cluster_start(o, pool, &rt, &err) != 0) return sp_cli_report(&err);
  if (sp_tools_json(rt, pool, &json, &err) == 0) {
    sp_cli_print_json(json);
    rc = SP_EXIT_OK;
  } else {
    rc = sp_cli_report(&err);
  }
  sp_free(json);
  sp_runtime_stop(rt, 0);
  return rc;
}

/* `submit POOL TOOL [JSON] [--array NAME=FILE.npy]...`: prints {"job": ID}. */
static int cmd_submit(const sp_cli_opts_t *o, int argc, char **argv) {
  if (o->out_dir != NULL || o->session != NULL) {
    fprintf(stderr, "snakepit: submit takes no %s (a job's outcome is JSON, read with `result`; "
            "jobs run outside sessions)\n", o->out_dir ? "--out" : "--session");
    return SP_EXIT_USAGE;
  }
  sp_cli_inputs_t in;
  int rc = sp_cli_inputs_load(o, &in);
  if (rc >= 0) {
    sp_cli_inputs_free(&in);
    return rc;
  }
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = o->timeout_ms;
  opts.arrays = in.arrays;
  opts.array_count = in.count;
  char *id = NULL;
  sp_error_t err;
  if (sp_job_submit(&o->nats, argv[1], argv[2], argc > 3 ? argv[3] : "{}", &opts, o->job_id, &id,
                    &err) != 0) {
    rc = sp_cli_report(&err);
  } else {
    printf("{\"job\": \"%s\"}\n", id);
    rc = SP_EXIT_OK;
  }
  sp_free(id);
  sp_cli_inputs_free(&in);
  return rc;
}

/* `result JOB`: the outcome, waiting up to -t MS; exit 5 while it has not finished. */
static int cmd_result(const sp_cli_opts_t *o, const char *job) {
  int done = 0;
  sp_result_t res;
  int rc = sp_job_result(&o->nats, job, o->timeout_ms, &done, &res);
  if (rc == 0 && !done) {
    fprintf(stderr, "snakepit: job %s has not finished%s\n", job,
            o->timeout_ms ? " within the wait" : " (wait for it with -t MS)");
    sp_result_free(&res);
    return SP_EXIT_TIMEOUT;
  }
  if (rc == 0) sp_cli_print_json(res.json);
  else rc = sp_cli_report(&res.error);
  sp_result_free(&res);
  return rc;
}

int sp_cli_cluster(const sp_cli_opts_t *o, int argc, char **argv) {
  const char *cmd = argv[0];
  if (strcmp(cmd, "submit") == 0) return cmd_submit(o, argc, argv);
  if (strcmp(cmd, "result") == 0) return cmd_result(o, argv[1]);
  json_t *doc = NULL;
  int rc = nodes_doc(o, &doc);
  if (rc >= 0) return rc;
  if (strcmp(cmd, "nodes") == 0) {
    if (o->json || !isatty(STDOUT_FILENO)) {
      char *text = json_dumps(doc, JSON_INDENT(2));
      puts(text);
      free(text);
    } else {
      print_nodes(doc);
    }
    rc = SP_EXIT_OK;
  } else if (strcmp(cmd, "stats") == 0) {
    rc = print_stats(o, doc, argc == 2 ? argv[1] : NULL);
  } else { /* pools, and tools of every pool */
    json_t *names = pool_names(doc);
    if (strcmp(cmd, "pools") == 0) {
      char *text = json_dumps(names, JSON_COMPACT);
      sp_cli_print_json(text);
      free(text);
      rc = SP_EXIT_OK;
    } else {
      size_t i;
      json_t *name;
      rc = SP_EXIT_OK;
      json_array_foreach(names, i, name) {
        int one = cmd_tools(o, json_string_value(name));
        if (one != SP_EXIT_OK) rc = one;
      }
    }
    json_decref(names);
  }
  json_decref(doc);
  return rc;
}
