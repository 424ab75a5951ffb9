"""The prompts: a manifest of texts per language, and the WAVs built from it.

Flows play prompt ids of the form `centralita/<id>`. Asterisk looks for them as
`<astdatadir>/sounds/<lang>/centralita/<id>.wav`, picking `<lang>` from `CHANNEL(language)`;
this repository keeps the same layout under `sounds/` so that installing is one copy or
symlink (docs/sounds.md).

`python -m centralita.sounds build` renders every text with espeak-ng and converts it with sox
to 8 kHz mono 16-bit signed PCM, the native format of Asterisk's `wav` format module (slin at
8 kHz: no transcoding on a G.711 call). Only texts that changed since the last build are
rendered again: `sounds/build-state.json` keeps a digest of what each WAV was built from.
`python -m centralita.sounds check` reports missing or malformed files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path

from centralita.settings import load_settings
from dialplan.validate import ConfigError

SOUNDS_DIR = Path(__file__).resolve().parent.parent / "sounds"
MANIFEST_NAME = "manifest.toml"
STATE_NAME = "build-state.json"
SUBDIR = "centralita"  # the prompt-id prefix, and the folder under <sounds>/<lang>/
PREFIX = SUBDIR + "/"

# The languages the manifest must cover, each with its espeak-ng voice.
VOICES: dict[str, str] = {"ar": "ar", "en": "en", "fr": "fr"}
LANGUAGES: tuple[str, ...] = tuple(sorted(VOICES))

SAMPLE_RATE = 8000
CHANNELS = 1
SAMPLE_WIDTH = 2  # bytes: 16-bit signed
ESPEAK_SPEED = 150  # words per minute; espeak-ng's 175 is hurried on an 8 kHz line
# A digest of the render settings goes into each prompt's build digest, so changing any of
# them rebuilds everything.
RENDER_SETTINGS = {"speed": ESPEAK_SPEED, "rate": SAMPLE_RATE, "bits": 16, "norm_db": -1}

# Prompt ids become file names and Asterisk sound paths: keep them to a safe set (no `/`,
# no `..`, no spaces) that dialplan/model.py's PROMPT_RE also accepts.
PROMPT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
LANG_RE = re.compile(r"^[a-z]{2,3}(?:_[A-Z]{2})?$")


class SoundsError(RuntimeError):
    """A build could not run (a missing tool, a failed render)."""


def load_manifest(path: Path | None = None) -> dict[str, dict[str, str]]:
    """Read the manifest: prompt id -> language -> text. Raises ConfigError when malformed."""
    path = path if path is not None else SOUNDS_DIR / MANIFEST_NAME
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(file, "(file)", exc.strerror or str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "(file)", f"not valid TOML: {exc}") from None
    manifest: dict[str, dict[str, str]] = {}
    for prompt_id, table in data.items():
        if not PROMPT_ID_RE.match(prompt_id):
            raise ConfigError(
                file, prompt_id, "a prompt id is lower-case letters, digits and '-' (at most 63)"
            )
        if not isinstance(table, dict):
            raise ConfigError(file, prompt_id, "must be a table of language = text")
        texts: dict[str, str] = {}
        for lang, text in table.items():
            key = f"{prompt_id}.{lang}"
            if not LANG_RE.match(lang):
                raise ConfigError(file, key, f"{lang!r} is not a language code like 'en'")
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(file, key, "must be a non-empty string")
            if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
                raise ConfigError(file, key, "control characters (newlines, tabs) are not allowed")
            texts[lang] = text
        manifest[prompt_id] = texts
    return manifest


def normalise_prompt_id(prompt_id: str) -> str:
    """`centralita/welcome` or `welcome` -> `welcome`; ValueError for anything else."""
    bare = prompt_id.removeprefix(PREFIX)
    if not PROMPT_ID_RE.match(bare):
        raise ValueError(f"{prompt_id!r} is not a prompt id")
    return bare


def prompt_path(lang: str, prompt_id: str, root: Path | None = None) -> Path:
    """Where the WAV of `prompt_id` (with or without `centralita/`) in `lang` lives."""
    if not LANG_RE.match(lang):
        raise ValueError(f"{lang!r} is not a language code")
    root = root if root is not None else SOUNDS_DIR
    return root / lang / SUBDIR / f"{normalise_prompt_id(prompt_id)}.wav"


def wav_problems(path: Path) -> list[str]:
    """What is wrong with one WAV for Asterisk (format, rate, channels, width); [] when fine."""
    try:
        with wave.open(str(path), "rb") as wav:
            params = wav.getparams()
    except FileNotFoundError:
        return [f"{path}: missing"]
    except (wave.Error, EOFError, OSError) as exc:
        return [f"{path}: not a PCM WAV file ({exc})"]
    problems = []
    if params.framerate != SAMPLE_RATE:
        problems.append(f"{path}: {params.framerate} Hz, not {SAMPLE_RATE} Hz")
    if params.nchannels != CHANNELS:
        problems.append(f"{path}: {params.nchannels} channels, not mono")
    if params.sampwidth != SAMPLE_WIDTH:
        problems.append(f"{path}: {8 * params.sampwidth}-bit, not 16-bit")
    if params.nframes == 0:
        problems.append(f"{path}: no audio")
    return problems


def check(
    languages: Iterable[str] | None = None,
    *,
    root: Path | None = None,
    manifest: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Every problem that would make a prompt fail in one of `languages` (default: all).

    A prompt without a text in a language, a missing WAV, or a WAV that is not 8 kHz mono
    16-bit each give one line.
    """
    root = root if root is not None else SOUNDS_DIR
    if manifest is None:
        manifest = load_manifest(root / MANIFEST_NAME)
    langs = list(languages) if languages is not None else list(LANGUAGES)
    problems: list[str] = []
    for prompt_id, texts in manifest.items():
        for lang in langs:
            if lang not in texts:
                problems.append(f"{prompt_id}: no {lang} text in the manifest")
            problems.extend(wav_problems(prompt_path(lang, prompt_id, root)))
    return problems


def text_digest(text: str, voice: str) -> str:
    """What a WAV is built from (text, voice, render settings), as a hex digest."""
    blob = json.dumps({"text": text, "voice": voice, **RENDER_SETTINGS}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SoundsError(
            f"{name} not found: install the Debian packages with `apt-get install -y espeak-ng sox`"
        )
    return found


def _run(argv: list[str], stdin: bytes | None = None) -> None:
    # A list of arguments and no shell: the prompt text goes in on stdin, never on the
    # command line, so nothing in it is ever parsed as an option.
    result = subprocess.run(  # noqa: S603
        argv, input=stdin, capture_output=True, timeout=120, check=False
    )
    if result.returncode != 0:
        err = result.stderr.decode("utf-8", "replace").strip()
        raise SoundsError(f"{Path(argv[0]).name} failed ({result.returncode}): {err}")


def render(text: str, voice: str, out: Path) -> None:
    """Render `text` with espeak-ng `voice` into `out` as 8 kHz mono 16-bit signed WAV."""
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="centralita-sounds-") as tmp:
        raw = Path(tmp) / "raw.wav"
        # -b 1: the input is UTF-8 (Arabic, French accents); --stdin: text from stdin.
        _run(
            [espeak, "-v", voice, "-s", str(ESPEAK_SPEED), "-b", "1", "-w", str(raw), "--stdin"],
            stdin=text.encode("utf-8"),
        )
        part = Path(tmp) / "out.wav"
        # -D: no dither, so that the same text always gives the same bytes (no noise in
        # git diffs); norm -1: peak at -1 dBFS, the same loudness for every prompt.
        sox_args = ["-D", "-V1", str(raw), "-r", str(SAMPLE_RATE), "-c", str(CHANNELS)]
        sox_args += ["-b", "16", "-e", "signed-integer", str(part)]
        sox_args += ["norm", str(RENDER_SETTINGS["norm_db"])]
        _run([sox, *sox_args])
        # Replace the committed file in one step: a build that stops half-way leaves each
        # WAV either old or new, never truncated.
        staged = out.with_suffix(".wav.part")
        shutil.move(part, staged)
        os.replace(staged, out)


def build(
    *,
    force: bool = False,
    root: Path | None = None,
    languages: Iterable[str] | None = None,
) -> list[Path]:
    """Render every prompt whose text (or voice, or settings) changed; return the paths built.

    WAVs under `<lang>/centralita/` that no manifest entry names any more are removed.
    """
    root = root if root is not None else SOUNDS_DIR
    manifest = load_manifest(root / MANIFEST_NAME)
    langs = list(languages) if languages is not None else list(LANGUAGES)
    for lang in langs:
        if lang not in VOICES:
            raise SoundsError(f"no espeak-ng voice configured for {lang!r}")
    state_path = root / STATE_NAME
    try:
        state: dict[str, str] = json.loads(state_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        state = {}
    built: list[Path] = []
    for prompt_id, texts in sorted(manifest.items()):
        for lang in langs:
            if lang not in texts:
                raise SoundsError(f"{prompt_id}: no {lang} text in the manifest")
            out = prompt_path(lang, prompt_id, root)
            key = f"{lang}/{prompt_id}"
            digest = text_digest(texts[lang], VOICES[lang])
            if not force and state.get(key) == digest and not wav_problems(out):
                continue
            render(texts[lang], VOICES[lang], out)
            state[key] = digest
            built.append(out)
            # Saved after each prompt, so an interrupted build resumes where it stopped.
            _save_state(state_path, state)
    for lang in langs:
        for wav in sorted((root / lang / SUBDIR).glob("*.wav")):
            if wav.stem not in manifest:
                wav.unlink()
                state.pop(f"{lang}/{wav.stem}", None)
    _save_state(state_path, state)
    return built


def _save_state(path: Path, state: dict[str, str]) -> None:
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _languages_from_config(config: str) -> list[str]:
    return [lang.code for lang in load_settings(config).site.languages]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m centralita.sounds build|check`."""
    parser = argparse.ArgumentParser(prog="python -m centralita.sounds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="render changed prompts with espeak-ng and sox")
    p_build.add_argument("--force", action="store_true", help="render every prompt again")
    p_build.add_argument("--lang", action="append", help="only this language (repeatable)")
    p_check = sub.add_parser("check", help="report missing or malformed prompt files")
    p_check.add_argument("--lang", action="append", help="check this language (repeatable)")
    p_check.add_argument("--config", help="check the languages configured in this file")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            built = build(force=args.force, languages=args.lang)
            for path in built:
                print(f"built {path.relative_to(SOUNDS_DIR)}")
            print(f"{len(built)} prompt file(s) built, the others were up to date")
            problems = check(args.lang)
        else:
            langs = args.lang
            if args.config:
                langs = _languages_from_config(args.config)
            problems = check(langs)
    except (SoundsError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems and args.command == "check":
        print("all prompts present, 8 kHz mono 16-bit")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
