"""hadamard_bench.proc: /proc's `key: value` files, read the one way every caller reads them."""

from hadamard_bench import proc


def test_a_proc_file_reads_as_its_first_values_and_sizes_in_bytes(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text("MemTotal:       2048 kB\nMemAvailable:   1024 kB\nmodel name\t: Some CPU\n"
                    "model name\t: Another\nno colon here\n")
    found = proc.fields(str(path))
    assert found == {"MemTotal": "2048 kB", "MemAvailable": "1024 kB", "model name": "Some CPU"}
    assert proc.kib_bytes(found["MemAvailable"]) == 1024 * 1024
    assert proc.kib_bytes(None) is None and proc.kib_bytes("n/a") is None
    assert proc.fields(str(tmp_path / "missing")) == {}
