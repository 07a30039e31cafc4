"""Snakepit's configuration names in a pools file: accepted with their meaning
here, or refused with an error naming the file, line and what to write."""

import json

import pytest

from test_cli import ADAPTERS, EXIT_CONFIG, run


def write(tmp_path, body):
    path = tmp_path / "pools.yaml"
    path.write_text(body)
    return str(path)


def test_snakepit_names_are_accepted(tmp_path):
    cfg = write(tmp_path, f"""pools:
  - name: hpc
    adapter_module: Snakepit.Adapters.GRPCPython
    adapter_args: ["--adapter", "snakepit_style_adapter.RegistryAdapter",
                   "--mode", "threaded", "--max-workers", "3", "--thread-safety-check"]
    worker_ttl: [3600, seconds]
    worker_max_requests: infinity
    pool_size: 1
    python_path: [{ADAPTERS}]
""")
    proc = run("-c", cfg, "exec", "hpc", "add", '{"a": 1, "b": 2}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == 3
    stats = run("-c", cfg, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    pool = json.loads(stats.stdout)["pools"][0]
    assert pool["profile"] == "thread" and pool["threads_per_worker"] == 3
    assert pool["adapter"] == "snakepit_style_adapter.RegistryAdapter"


@pytest.mark.parametrize("entry,line,words", [
    ("adapter_module: my_app.adapters.Main", 3, "write 'adapter: my_app.adapters.Main'"),
    ("adapter_module: Snakepit.Adapters.Other", 3, "only Snakepit.Adapters.GRPCPython"),
    ("pool_config: {pool_size: 4}", 3, "write its keys (pool_size, startup_batch_size, ...) "
                                       "directly in this pool entry"),
    ("startup_batch_delay_ms: 750", 3, "remove it"),
    ("worker_ttl: [3600, fortnights]", 3, "must be seconds, minutes or hours"),
    ("worker_ttl: [1, 2, 3]", 3, "Snakepit's [N, unit]"),
    ("worker_ttl: [10000, hours]", 3, "worker_ttl"),
    ("adapter_args: [--adapter, m.C, --elixir-address, 'localhost:50051']", 3,
     "--elixir-address configured Snakepit's gRPC server"),
    ("adapter_args: [--adapter, m.C, --verbose]", 3, "'--verbose' is not one this project maps"),
    ("adapter_args: [--adapter, m.C, --max-workers, '8']", 3,
     "write worker_profile: thread and threads_per_worker: 8"),
    ("adapter_args: [--adapter]", 3, "--adapter needs a value"),
    ("adapter: a.B\n    adapter_args: [--adapter, m.C]", 4, "contradicts adapter: a.B"),
])
def test_snakepit_names_without_equivalent_are_refused(tmp_path, entry, line, words):
    cfg = write(tmp_path, f"pools:\n  - name: p\n    {entry}\n")
    proc = run("-c", cfg, "pools")
    assert proc.returncode == EXIT_CONFIG, (proc.returncode, proc.stderr)
    assert f"pools.yaml:{line}:" in proc.stderr and words in proc.stderr, proc.stderr


@pytest.mark.parametrize("body,words", [
    ("pool_config: {pool_size: 4}\npools:\n  - name: p\n", "write 'pools:' with one entry"),
    ("pooling_enabled: true\npools:\n  - name: p\n", "remove it"),
    ("adapter_module: Snakepit.Adapters.GRPCPython\npools:\n  - name: p\n",
     "belongs in a pool entry"),
])
def test_snakepit_top_level_names_are_refused(tmp_path, body, words):
    proc = run("-c", write(tmp_path, body), "pools")
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert "pools.yaml:1:" in proc.stderr and words in proc.stderr, proc.stderr


def test_plain_adapter_args_stay_constructor_arguments(tmp_path):
    cfg = write(tmp_path, f"""pools:
  - name: p
    adapter: testing_adapter.TestingAdapter
    adapter_args: ["--mode", "fast"]
    pool_size: 1
    python_path: [{ADAPTERS}]
""")
    proc = run("-c", cfg, "exec", "p", "noop")
    assert proc.returncode == 0, proc.stderr
