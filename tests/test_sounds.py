"""The prompt manifest, the committed WAVs, and the build/check tooling."""

from __future__ import annotations

import array
import json
import shutil
import sys
import wave
from pathlib import Path

import pytest

from centralita import sounds
from dialplan.validate import ConfigError

# The prompt ids the flows play (issue 3); the lead's flow test checks the other direction.
FLOW_PROMPTS = {
    "welcome",
    "menu",
    "invalid-option",
    "recording-notice",
    "all-agents-busy",
    "enter-phone-number",
    "you-entered",
    "confirm-reenter",
    "enter-alternative",
    "callback-thanks",
    "rate-call",
    "rating-thanks",
    "leave-message",
    "enter-customer-id",
    "customer-id-is",
    "confirm",
    "goodbye",
    "please-wait",
}

MANIFEST = sounds.load_manifest()
TOOLS = shutil.which("espeak-ng") is not None and shutil.which("sox") is not None
needs_tools = pytest.mark.skipif(not TOOLS, reason="espeak-ng and sox are not installed")


def _peak(path: Path) -> int:
    with wave.open(str(path), "rb") as wav:
        samples = array.array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()  # WAV samples are little-endian
    return max(abs(s) for s in samples)


def _write_wav(path: Path, *, rate: int = 8000, channels: int = 1, width: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(b"\x10" * (400 * channels * width))


def test_manifest_has_every_flow_prompt() -> None:
    assert set(MANIFEST) >= FLOW_PROMPTS


def test_every_prompt_has_exactly_ar_en_fr() -> None:
    assert sounds.LANGUAGES == ("ar", "en", "fr")
    for prompt_id, texts in MANIFEST.items():
        # Exactly the built languages: a language in the manifest that nothing builds would
        # be an unused language, a missing one a prompt that fails on a call.
        assert set(texts) == set(sounds.LANGUAGES), prompt_id
        for lang, text in texts.items():
            assert text.strip() == text and text, (prompt_id, lang)


def test_menu_options_are_spoken_in_their_own_language_with_the_demo_digits() -> None:
    menu = MANIFEST["menu"]
    assert "1" in menu["ar"] and "للعربية" in menu["ar"]
    assert "2" in menu["en"] and "English" in menu["en"]
    assert "3" in menu["fr"] and "français" in menu["fr"]


@pytest.mark.parametrize("lang", sounds.LANGUAGES)
@pytest.mark.parametrize("prompt_id", sorted(MANIFEST))
def test_committed_wav_is_8khz_mono_16bit_and_not_silent(prompt_id: str, lang: str) -> None:
    path = sounds.prompt_path(lang, f"centralita/{prompt_id}")
    assert path == sounds.SOUNDS_DIR / lang / "centralita" / f"{prompt_id}.wav"
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == 8000
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getcomptype() == "NONE"
        assert wav.getnframes() > 8000 * 0.3  # even "Goodbye." lasts longer than 0.3 s
    assert _peak(path) > 3000  # speech, not silence


def test_committed_wavs_were_built_from_the_current_texts() -> None:
    # build-state.json records the digest of the text each WAV was rendered from: a text
    # edited without `make sounds` shows up here.
    state = json.loads((sounds.SOUNDS_DIR / sounds.STATE_NAME).read_text(encoding="utf-8"))
    expected = {
        f"{lang}/{pid}": sounds.text_digest(texts[lang], sounds.VOICES[lang])
        for pid, texts in MANIFEST.items()
        for lang in sounds.LANGUAGES
    }
    assert state == expected


def test_no_stray_languages_or_files() -> None:
    langs = {p.name for p in sounds.SOUNDS_DIR.iterdir() if p.is_dir()}
    assert langs == set(sounds.LANGUAGES)
    for lang in sounds.LANGUAGES:
        assert {p.name for p in (sounds.SOUNDS_DIR / lang).iterdir()} == {"centralita"}
        files = {p.name for p in (sounds.SOUNDS_DIR / lang / "centralita").iterdir()}
        assert files == {f"{pid}.wav" for pid in MANIFEST}


def test_check_of_the_repository_is_clean() -> None:
    assert sounds.check() == []
    assert sounds.check(["en"]) == []
    assert sounds.main(["check"]) == 0
    assert sounds.main(["check", "--config", str(_demo_config())]) == 0


def _demo_config() -> Path:
    return Path(sounds.__file__).parent / "demo" / "centralita.toml"


def test_check_reports_missing_text_file_rate_channels_width(tmp_path: Path) -> None:
    (tmp_path / "manifest.toml").write_text(
        '[good]\nen = "Good."\nfr = "Bon."\n'
        '[wide]\nen = "Wide."\nfr = "Large."\n'
        '[stereo]\nen = "Two."\nfr = "Deux."\n'
        '[narrow]\nen = "Eight."\nfr = "Huit."\n'
        '[absent]\nen = "Nothing."\nfr = "Rien."\n'
        '[english-only]\nen = "Only."\n',
        encoding="utf-8",
    )
    for lang in ("en", "fr"):
        _write_wav(tmp_path / lang / "centralita" / "good.wav")
        _write_wav(tmp_path / lang / "centralita" / "wide.wav", rate=16000)
        _write_wav(tmp_path / lang / "centralita" / "stereo.wav", channels=2)
        _write_wav(tmp_path / lang / "centralita" / "narrow.wav", width=1)
    _write_wav(tmp_path / "en" / "centralita" / "english-only.wav")
    _write_wav(tmp_path / "fr" / "centralita" / "english-only.wav")

    problems = sounds.check(["en", "fr"], root=tmp_path)
    text = "\n".join(problems)
    assert not any("good.wav" in p for p in problems)
    assert "16000 Hz, not 8000 Hz" in text
    assert "2 channels, not mono" in text
    assert "8-bit, not 16-bit" in text
    assert f"{tmp_path / 'en' / 'centralita' / 'absent.wav'}: missing" in problems
    assert "english-only: no fr text in the manifest" in problems
    assert len(problems) == 2 * 4 + 1
    # Only the languages asked about are checked.
    assert sounds.check(["en"], root=tmp_path) == [
        p for p in problems if "/fr/" not in p and "no fr text" not in p
    ]


def test_check_reports_a_file_that_is_not_a_wav(tmp_path: Path) -> None:
    (tmp_path / "manifest.toml").write_text('[x]\nen = "X."\n', encoding="utf-8")
    bad = tmp_path / "en" / "centralita" / "x.wav"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"ID3 this is an mp3")
    [problem] = sounds.check(["en"], root=tmp_path)
    assert "not a PCM WAV file" in problem


@pytest.mark.parametrize(
    "bad_id", ["../etc/passwd", "centralita/../x", "a/b", "", "Welcome", "x y", "sub/welcome"]
)
def test_prompt_path_refuses_ids_that_are_not_plain_names(bad_id: str) -> None:
    with pytest.raises(ValueError):
        sounds.prompt_path("en", bad_id)


def test_prompt_path_refuses_bad_language() -> None:
    with pytest.raises(ValueError):
        sounds.prompt_path("../en", "welcome")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('welcome = "not a table"\n', "must be a table"),
        ('[welcome]\nen = "two\\nlines"\n', "control characters"),
        ('[welcome]\nen = ""\n', "non-empty"),
        ("[welcome]\nen = 3\n", "non-empty string"),
        ('[welcome]\nEnglish = "Hi"\n', "not a language code"),
        ('["../up"]\nen = "Hi"\n', "prompt id"),
        ("[welcome\n", "not valid TOML"),
    ],
)
def test_load_manifest_refuses_malformed_entries(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "manifest.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=reason) as info:
        sounds.load_manifest(path)
    assert info.value.file == str(path)


@needs_tools
def test_build_renders_only_changed_texts_and_removes_orphans(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(
        '[hello]\nar = "مرحبا"\nen = "Hello."\nfr = "Bonjour."\n'
        '[bye]\nar = "مع السلامة"\nen = "Bye."\nfr = "Salut."\n',
        encoding="utf-8",
    )
    built = sounds.build(root=tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in built) == sorted(
        f"{lang}/centralita/{pid}.wav" for lang in ("ar", "en", "fr") for pid in ("hello", "bye")
    )
    assert sounds.check(root=tmp_path) == []
    assert all(_peak(p) > 3000 for p in built)
    before = (tmp_path / "fr" / "centralita" / "hello.wav").read_bytes()

    assert sounds.build(root=tmp_path) == []  # nothing changed, nothing rendered

    manifest.write_text(
        '[hello]\nar = "مرحبا"\nen = "Hello there."\nfr = "Bonjour."\n', encoding="utf-8"
    )
    assert sounds.build(root=tmp_path) == [tmp_path / "en" / "centralita" / "hello.wav"]
    assert not (tmp_path / "en" / "centralita" / "bye.wav").exists()  # no longer in manifest
    assert (tmp_path / "fr" / "centralita" / "hello.wav").read_bytes() == before
    state = json.loads((tmp_path / sounds.STATE_NAME).read_text(encoding="utf-8"))
    assert set(state) == {"ar/hello", "en/hello", "fr/hello"}

    # A damaged WAV is rebuilt even though its text did not change.
    (tmp_path / "ar" / "centralita" / "hello.wav").write_bytes(b"junk")
    assert sounds.build(root=tmp_path) == [tmp_path / "ar" / "centralita" / "hello.wav"]
    assert sounds.check(root=tmp_path) == []


@needs_tools
def test_build_is_reproducible(tmp_path: Path) -> None:
    (tmp_path / "manifest.toml").write_text('[x]\nen = "Press 1."\n', encoding="utf-8")
    [path] = sounds.build(root=tmp_path, languages=["en"])
    first = path.read_bytes()
    [again] = sounds.build(root=tmp_path, languages=["en"], force=True)
    assert again.read_bytes() == first  # no dither: committed WAVs do not churn


def test_build_refuses_a_language_without_a_voice(tmp_path: Path) -> None:
    (tmp_path / "manifest.toml").write_text('[x]\nde = "Hallo."\n', encoding="utf-8")
    with pytest.raises(sounds.SoundsError, match="no espeak-ng voice"):
        sounds.build(root=tmp_path, languages=["de"])
