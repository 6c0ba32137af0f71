import numpy as np
import pandas as pd
import pytest

from app.analysis import asymptotic_fit, find_crossover, fit_exponent, fitted_exponents, judged_crossover, longest_sweep


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_the_fit_recovers_a_known_exponent_from_noisy_data(exponent):
    rng = np.random.default_rng(0)
    x = np.array([64, 128, 256, 512, 1024, 2048])
    y = 3e-7 * x ** exponent * np.exp(rng.normal(0, 0.05, len(x)))
    fit = fit_exponent(x, y)
    assert fit.exponent == pytest.approx(exponent, abs=0.05)
    assert 0 < fit.stderr < 0.05


def test_the_asymptotic_fit_ignores_the_overhead_floor():
    x = np.array([16, 32, 64, 128, 256, 512, 1024, 2048])
    y = 1e-4 + 1e-9 * x ** 2  # a fixed 0.1 ms overhead hides the growth at small sizes
    assert fit_exponent(x, y).exponent < 1.0
    assert asymptotic_fit(x, y).exponent > 1.3


def test_a_planted_crossover_is_found():
    x = np.array([64, 128, 256, 512, 1024])
    linear, quadratic = 1e-6 * x, 1e-6 * x * x / 200  # equal at x = 200
    found = find_crossover(x, linear, quadratic)
    assert found.kind == "crossover"
    assert found.at == pytest.approx(200, rel=0.1)
    assert found.describe("N") == "N ≈ 200" or found.describe("N").startswith("N ≈ 2")


def test_no_crossover_and_always_faster():
    x = np.array([1, 2, 4])
    assert find_crossover(x, [2, 4, 8], [1, 2, 4]).describe("N") == "none in range"
    assert find_crossover(x, [1, 2, 4], [2, 4, 8]).kind == "always_faster"


def test_a_judged_crossover_waits_for_every_larger_size_to_be_judged_faster():
    x = [16, 32, 64, 128]
    # The medians put the method ahead from N ≈ 31, but N=32 was within the noise: the verdicts
    # put it ahead between 32 and 64 (its estimate there already above 1: at 64).
    speedup = [0.5, 1.03, 1.5, 2.0]
    assert find_crossover(x, [1 / s for s in speedup], [1] * 4).at < 32
    judged = judged_crossover(x, speedup, ["slower", "inconclusive", "faster", "faster"])
    assert judged.kind == "crossover" and judged.at == 64
    # Below 1 at the last size not judged faster: interpolated where the estimates cross 1.
    judged = judged_crossover(x, [0.5, 0.9, 1 / 0.9, 2.0], ["slower", "slower", "faster", "faster"])
    assert judged.kind == "crossover" and 32 < judged.at < 64 and judged.at == pytest.approx(32 * 2 ** 0.5, rel=0.01)
    # A faster size before a slower one does not count; the order of the sizes does not matter.
    assert judged_crossover(x[::-1], [2.0, 1.5, 0.8, 1.3][::-1], ["faster", "slower", "faster", "faster"][::-1]).at == 64
    assert judged_crossover(x, [1.2] * 4, ["faster"] * 4).kind == "always_faster"
    assert judged_crossover(x, [1.2, 1.2, 1.2, 1.04], ["faster"] * 3 + ["no change"]).kind == "never_faster"
    unsure = judged_crossover(x, [1.2, 1.2, 1.2, 1.3], ["faster"] * 3 + ["inconclusive"])
    assert unsure.kind == "unsure" and unsure.describe("N").startswith("unsure")


def test_the_longest_sweep_holds_the_other_sizes_fixed():
    rows = pd.DataFrame({"size_N": [1, 2, 4, 8, 2, 2], "size_C": [8, 8, 8, 8, 4, 16], "y": range(6)})
    fixed, group = longest_sweep(rows, "N")
    assert fixed == {"C": 8}
    assert list(group["size_N"]) == [1, 2, 4, 8]
    assert longest_sweep(rows, "C")[0] == {"N": 2}



def test_a_metric_no_cell_of_the_sweep_has_fits_nothing():
    """Memory peaks absent from every cell (results imported with times only): no fit, no error."""
    rows = pd.DataFrame({"method": "m", "size_N": [1, 2, 4, 8], "time_median_s": [1.0, 2.0, 4.0, 8.0],
                         "peak_mem_bytes": float("nan")})
    methods = pd.DataFrame({"method": ["m"], "role": ["hadamard"], "exponents": [{"N": 1.0}]})
    assert fitted_exponents(rows, methods, "N", "peak_mem_bytes") == []
    [fit] = fitted_exponents(rows, methods, "N")
    assert fit["measured"] == pytest.approx(1.0) and not fit["flag"]

def _cells(times, iqr_share=0.02):
    return pd.DataFrame({"benchmark": "b", "method": [f"m{i}" for i in range(len(times))], "backend": "eager",
                         "device": "cpu", "dtype": "float32", "mode": "forward", "size": "n=1",
                         "time_median_s": times, "time_iqr_s": [t * iqr_share for t in times]})


def test_exports_are_valid_in_their_formats():
    import io

    from app.exports import TABLE_FORMATS, latex_table, markdown_table

    frame = pd.DataFrame({"method": ["poly_sa", "a|b"], "time_median_s": [1.5e-3, 2.0]})
    tex = latex_table(frame)
    assert "\\toprule" in tex and "poly\\_sa" in tex and "time\\_median\\_s" in tex and "0.0015" in tex
    md = markdown_table(frame).splitlines()
    assert md[0] == "| method | time_median_s |" and md[3] == "| a\\|b | 2.0 |"
    parquet = TABLE_FORMATS["Parquet"][0](frame)
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(parquet)), frame)
    assert pd.read_json(io.StringIO(TABLE_FORMATS["JSON"][0](frame))).shape == (2, 2)
