"""The data sets: shapes, splits, the IDX reader and its errors, the synthetic sets' properties."""

import gzip

import numpy as np
import pytest
import torch

import dlkit.plan  # noqa: F401
import idx_files
from dlkit.data.idx import read_idx
from dlkit.data.tensors import split, split_indices
from dlkit.errors import ConfigError
from dlkit.registry import registry
from idx_files import idx_bytes, write_mnist


def data(name, **params):
    return registry("data").build({"name": name, **params})


def test_digits_split_is_fixed_stratified_and_resizable():
    d = data("digits")
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    assert torch.equal(d.test.y, data("digits").test.y)  # the split does not depend on the run
    per_class = torch.bincount(torch.cat([d.train.y, d.val.y, d.test.y]))
    assert torch.equal(torch.bincount(d.test.y), (per_class * 0.2).round().long())  # stratified: each digit 70/10/20
    assert torch.equal(torch.bincount(d.val.y), (per_class * 0.1).round().long())
    assert len(torch.bincount(d.train.y[:50]).nonzero()) == 10  # a split's first samples (data.limit) mix every digit


def test_a_stratified_split_by_hand():
    classes = np.array([0] * 10 + [1] * 20)
    train, val, test = split_indices(classes, 30, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(30))  # disjoint, and nothing left out
    assert np.bincount(classes[test]).tolist() == [2, 4] and np.bincount(classes[val]).tolist() == [1, 2]
    assert len(train) == 21
    again = split_indices(classes, 30, 0.1, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert not np.array_equal(test, split_indices(classes, 30, 0.1, 0.2, seed=4)[2])
    plain = split_indices(None, 30, 0.1, 0.2, seed=3)  # targets that are values: one cut of the shuffle
    assert [len(p) for p in plain] == [21, 3, 6]


def inputs(d):
    return [s.x.tolist() for s in (d.train, d.val, d.test)]


def test_the_split_helper_by_hand():
    x, y = np.arange(10), np.arange(10) * 10.0
    # No seed: cut in order, each boundary rounded down (10 × 0.5 = 5, 10 × 0.7 = 7).
    d = split("a", x, y, val_fraction=0.2, test_fraction=0.3, target="value")
    assert inputs(d) == [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]] and d.test.y.tolist() == [70.0, 80.0, 90.0]
    assert (d.name, d.target, d.train.x.dtype, d.train.y.dtype) == ("a", "value", torch.long, torch.float)
    # 10 × (1 - 0.3 - 0.3) is 3.99… in floating point: 3 training samples; limit keeps each split's first 2.
    d = split("a", x, y, val_fraction=0.3, test_fraction=0.3, limit=2, target="value")
    assert inputs(d) == [[0, 1], [3, 4], [7, 8]]

    # A given test set: the last round(12 × 0.25) = 3 training samples validate; limit cuts the test set too.
    x, y, test = np.arange(12), np.arange(12) % 3, (np.arange(100, 104), np.zeros(4, dtype=np.int64))
    d = split("b", x, y, val_fraction=0.25, test=test, num_classes=3)
    assert inputs(d) == [list(range(9)), [9, 10, 11], [100, 101, 102, 103]] and d.num_classes == 3
    assert inputs(split("b", x, y, val_fraction=0.25, test=test, limit=2)) == [[0, 1], [9, 10], [100, 101]]
    assert inputs(split("b", x[:5], y[:5], val_fraction=0.05, test=test))[:2] == [[0, 1, 2, 3], [4]]  # at least one

    # A seed: split_indices' shuffle, stratified for classes (10 × 0.2 = 2 and 20 × 0.2 = 4 test samples).
    x, classes = np.arange(30), np.array([0] * 10 + [1] * 20)
    d = split("c", x, classes, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert [len(d.train), len(d.val), len(d.test)] == [21, 3, 6] and d.test.y.bincount().tolist() == [2, 4]
    assert inputs(d) == [part.tolist() for part in split_indices(classes, 30, 0.1, 0.2, seed=3)]
    limited = split("c", x, classes, val_fraction=0.1, test_fraction=0.2, seed=3, limit=4)
    assert inputs(limited) == [part[:4] for part in inputs(d)]
    values = split("c", x, classes * 1.0, val_fraction=0.1, test_fraction=0.2, seed=3, target="value")
    assert inputs(values) == [part.tolist() for part in split_indices(None, 30, 0.1, 0.2, seed=3)]  # not stratified

    for wrong in ({}, {"test_fraction": 0.2, "test": test}, {"test": test, "seed": 0}):
        with pytest.raises(ValueError):
            split("d", x, classes, val_fraction=0.1, **wrong)


def test_mnist1d_is_generated_offline_and_cached(tmp_path, caplog):
    """Cached whole or not at all: parallel jobs on a fresh output folder each generate it, and one may read the cache
    while another writes it (read as it is written, the file was seen half-written 21 times in one generation)."""
    import threading

    import numpy as np

    caplog.set_level("INFO", logger="dlkit")
    cache, written, half_read = tmp_path / "mnist1d-seed42.npz", threading.Event(), []

    def read_while_written():
        while not written.is_set():
            if cache.exists():
                try:
                    with np.load(cache) as arrays:
                        [arrays[key] for key in arrays.files]
                except Exception as failure:  # noqa: BLE001 (any failure to read it is the finding)
                    half_read.append(repr(failure))

    reader = threading.Thread(target=read_while_written)
    reader.start()
    try:
        d = data("mnist1d", cache_dir=str(tmp_path))
    finally:
        written.set()
        reader.join()
    assert half_read == [] and [p.name for p in tmp_path.iterdir()] == [cache.name]
    assert (len(d.train), len(d.val), len(d.test)) == (3600, 400, 1000) and d.input_shape == (1, 40)
    assert f"MNIST-1D (seed 42) generated and cached in {cache}" in caplog.messages  # once: read from it next
    caplog.clear()
    again = data("mnist1d", cache_dir=str(tmp_path))
    assert torch.equal(again.train.x, d.train.x) and caplog.messages == []


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_are_read_plain_or_gzipped(tmp_path, gz):
    root = write_mnist(tmp_path / "m", train=24, test=8, gz=gz)
    d = data("mnist", root=str(root), val_fraction=0.25)
    assert (len(d.train), len(d.val), len(d.test)) == (18, 6, 8) and d.input_shape == (1, 28, 28)
    assert 0.0 <= d.train.x.min() and d.train.x.max() <= 1.0
    assert d.test.y.tolist() == [i % 10 for i in range(8)]


def test_read_idx_by_hand(tmp_path):
    path = tmp_path / "a-idx2-ubyte"
    path.write_bytes(b"\x00\x00\x08\x02" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6)))
    assert read_idx(path).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_a_truncated_idx_file_is_named(tmp_path):
    root = write_mnist(tmp_path / "m")
    images = root / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    message = r"train-images-idx3-ubyte is truncated: shape \(48, 28, 28\) needs 37648 bytes, the file has 37548"
    with pytest.raises(ConfigError, match=message):
        data("mnist", root=str(root))


def test_a_corrupted_idx_file_is_named(tmp_path):
    root = write_mnist(tmp_path / "m", gz=True)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"not an idx file"))
    with pytest.raises(ConfigError, match="t10k-labels-idx1-ubyte.gz is not an IDX file"):
        data("mnist", root=str(root))


def test_a_cut_gzip_file_is_named(tmp_path):
    root = write_mnist(tmp_path / "m", gz=True)
    images = root / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:200])
    with pytest.raises(ConfigError, match=r"train-images-idx3-ubyte.gz cannot be read \(Compressed file ended"):
        data("mnist", root=str(root))


def test_a_data_error_from_the_command_line_is_one_line_and_leaves_no_run(tmp_path):
    from conftest import dlkit_cli

    root = write_mnist(tmp_path / "m")
    (root / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")
    done = dlkit_cli("data=mnist", f"data.root={root}", f"paths.output_dir={tmp_path / 'outputs'}")
    assert done.returncode == 2
    expected = f"{root / 'train-labels-idx1-ubyte'} is not an IDX file of unsigned bytes (it starts with 000008)."
    assert done.stderr.strip() == f"dlkit: error: {expected}"
    assert not (tmp_path / "outputs" / "mlflow.db").exists()


def test_a_missing_folder_says_what_to_put_where(tmp_path):
    message = r"fashion_mnist: .*nowhere/train-images-idx3-ubyte\(.gz\) is missing; put the four IDX files"
    with pytest.raises(ConfigError, match=message):
        data("fashion_mnist", root=str(tmp_path / "nowhere"))


@pytest.fixture
def mirror(tmp_path):
    """A real HTTP server on 127.0.0.1 serving a folder of gzipped IDX files; yields its URL and the paths asked."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served, asked = write_mnist(tmp_path / "served", train=24, test=8, gz=True), []

    class Handler(SimpleHTTPRequestHandler):
        def log_request(self, code="-", size="-"):  # once per request, whatever its answer
            asked.append(self.path)

        def log_message(self, format, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/files", served, asked
    server.shutdown()
    server.server_close()


def test_download_fetches_the_missing_files_from_the_mirror_once(tmp_path, mirror):
    url, served, asked = mirror
    (served / "files").mkdir()
    for f in served.glob("*.gz"):
        f.rename(served / "files" / f.name)
    root = tmp_path / "empty"
    d = data("mnist", root=str(root), download=True, mirror=url, val_fraction=0.25)
    assert (len(d.train), len(d.val), len(d.test)) == (18, 6, 8) and d.test.y.tolist() == [i % 10 for i in range(8)]
    assert sorted(asked) == sorted(f"/files/{stem}.gz" for stem in idx_files.STEMS)  # each file once
    assert sorted(p.name for p in root.iterdir()) == sorted(f"{stem}.gz" for stem in idx_files.STEMS)
    again = data("mnist", root=str(root), download=True, mirror=url, val_fraction=0.25)
    assert len(asked) == 4 and torch.equal(again.train.x, d.train.x)  # found on disk: not fetched again


def test_a_download_that_fails_names_the_url_and_leaves_no_file(tmp_path, mirror):
    url, _, asked = mirror
    root = tmp_path / "empty"
    with pytest.raises(ConfigError, match=rf"could not download {url}/train-images-idx3-ubyte.gz for mnist \(HTTP"):
        data("mnist", root=str(root), download=True, mirror=url)  # the files are not under /files: 404
    assert asked == ["/files/train-images-idx3-ubyte.gz"] and list(root.iterdir()) == []


def test_images_and_labels_must_agree(tmp_path):
    root = write_mnist(tmp_path / "m")
    (root / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3)))
    with pytest.raises(ConfigError, match="mnist: test images and labels disagree: 16 images, 3 labels"):
        data("mnist", root=str(root))


def test_spirals_need_a_non_linear_boundary():
    from sklearn.linear_model import LogisticRegression

    d = data("spirals", samples=2000)
    linear = LogisticRegression().fit(d.train.x.numpy(), d.train.y.numpy()).score(d.test.x.numpy(), d.test.y.numpy())
    assert linear < 0.75  # a straight line does little better than a coin


def test_regression_outliers_corrupt_only_the_training_targets():
    d = data("regression_outliers", outlier_fraction=0.2, outlier_scale=20.0)
    fit = torch.linalg.lstsq(torch.cat([d.test.x, torch.ones(len(d.test), 1)], 1), d.test.y[:, None]).solution.flatten()

    def residual(s):
        return s.y - fit @ torch.cat([s.x, torch.ones(len(s), 1)], 1).T

    assert (residual(d.train).abs() > 5).float().mean().item() == pytest.approx(0.2, abs=0.05)
    assert residual(d.test).abs().max().item() < 1.0 and residual(d.val).abs().max().item() < 1.0


def test_imbalanced_has_the_requested_proportions():
    d = data("imbalanced", weights=[0.9, 0.1])
    share = torch.bincount(torch.cat([d.train.y, d.val.y, d.test.y])).float() / 2000
    assert share.tolist() == pytest.approx([0.9, 0.1], abs=0.01)


def test_reverse_targets_are_the_reversed_inputs_with_padding():
    d = data("reverse", samples=200, min_len=2, max_len=6)
    for x, y in zip(d.train.x[:50], d.train.y[:50], strict=True):
        length = int((x != 0).sum())
        assert 2 <= length <= 6 and (x[length:] == 0).all()
        assert torch.equal(y[:length], x[:length].flip(0)) and (y[length:] == 0).all()
    assert d.target == "sequence" and d.input_vocab == 10


def test_a_last_batch_smaller_than_the_smallest_allowed_is_left_out():
    from dlkit.data.tensors import Split, TensorBatches

    def sizes(n: int, smallest: int) -> list[int]:
        batches = TensorBatches(Split(torch.arange(n).float(), torch.arange(n)), 3, shuffle=True, smallest=smallest)
        seen = [len(y) for _, y in batches]
        assert len(batches) == len(seen)
        return seen

    assert sizes(7, 1) == [3, 3, 1] and sizes(7, 2) == [3, 3]  # 7 = 2 × 3 + 1: the batch of one goes
    assert sizes(8, 2) == [3, 3, 2]  # a last batch of two stays


def test_batch_norm_leaves_out_a_last_batch_of_one_and_rejects_batches_of_one(tmp_path):
    from conftest import dlkit_cli

    # digits: 1,259 training images = 37 × 34 + 1
    done = dlkit_cli("norm=batch", "optimizer.batch_size=34", "trainer.max_epochs=1", "tracking=none")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "the last training batch would hold 1 sample (1259 = 37 × 34 + 1)" in done.stdout + done.stderr
    one = dlkit_cli("optimizer=sgd", "norm=batch", f"paths.output_dir={tmp_path}")
    assert one.returncode == 2 and "Traceback" not in one.stderr
    assert "batch norm needs at least 2 samples per training batch" in one.stderr and "norm=layer" in one.stderr
    assert not (tmp_path / "mlflow.db").exists()  # rejected before any run was created
