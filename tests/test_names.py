"""dialplan/names.py is the one spelling of every context and channel variable shared between
the rendered dialplan and the code: the templates use it, the code imports it, and the rendered
dialplan (tests/golden) defines every context it names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from dialplan import names
from dialplan.render import _environment

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden"
TEMPLATES = ROOT / "conf_templates"
CODE_DIRS = ("agi", "ami", "centralita", "dialplan")
# A maximal context or variable token, so CENTRALITA_ROUTE does not match CENTRALITA_ROUTE_KIND.
TOKEN = re.compile(r"centralita-[a-z][a-z-]*[a-z]|CENTRALITA_[A-Z_]*[A-Z]")
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)

CONTEXTS = {k: v for k, v in names.template_names().items() if k.endswith("_CONTEXT")}
VARIABLES = {k: v for k, v in names.template_names().items() if k.endswith("_VAR")}
SHARED = set(CONTEXTS.values()) | set(VARIABLES.values())


def test_every_value_is_spelled_once_in_names() -> None:
    values = [*CONTEXTS.values(), *VARIABLES.values()]
    assert len(values) == len(set(values))
    assert all(v.startswith(names.VARIABLE_PREFIX) for v in VARIABLES.values())
    assert names.ref(names.ROUTE_VAR) == "${CENTRALITA_ROUTE}"


def test_every_context_is_defined_by_the_rendered_config() -> None:
    for driver in ("pjsip", "sip"):
        extensions = (GOLDEN / driver / "extensions.conf").read_text(encoding="utf-8")
        sections = set(re.findall(r"^\[([^\]]+)\]$", extensions, re.MULTILINE))
        voicemail = (GOLDEN / driver / "voicemail.conf").read_text(encoding="utf-8")
        mailboxes = set(re.findall(r"^\[([^\]]+)\]$", voicemail, re.MULTILINE))
        for key, context in CONTEXTS.items():
            where = mailboxes if key == "MAILBOX_CONTEXT" else sections
            assert context in where, f"{key} = {context!r} is not a section of the {driver} config"


def test_every_variable_is_used_by_the_dialplan() -> None:
    extensions = (TEMPLATES / "extensions.conf.j2").read_text(encoding="utf-8")
    used = {names.template_names()[key] for key in re.findall(r"names\.([A-Z_]+)", extensions)}
    # Set by the code only: AMI Originate (DIAL_VAR, PRIVATE_VAR) and the customer-ID flow,
    # for the tracker's screen pop (CUSTOMER_ID_VAR); the survey call file (CALL_ID_VAR, AGENT_VAR).
    code_only = {
        names.DIAL_VAR,
        names.PRIVATE_VAR,
        names.CUSTOMER_ID_VAR,
        names.CALL_ID_VAR,
        names.AGENT_VAR,
    }
    assert set(VARIABLES.values()) - code_only <= used


def test_templates_spell_no_shared_name_themselves() -> None:
    for template in sorted(TEMPLATES.glob("*.j2")):
        text = JINJA.sub("", template.read_text(encoding="utf-8"))
        found = [token for token in TOKEN.findall(text) if token in SHARED]
        assert found == [], f"{template.name} spells {found} instead of using names"


def _string_constants(tree: ast.AST) -> list[tuple[int, str]]:
    """The string literals of a module, without docstrings (prose may name a context)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_code_imports_the_shared_names() -> None:
    spelled: list[str] = []
    for folder in CODE_DIRS:
        for module in sorted((ROOT / folder).rglob("*.py")):
            if module == ROOT / "dialplan" / "names.py":
                continue
            tree = ast.parse(module.read_text(encoding="utf-8"))
            for line, value in _string_constants(tree):
                for token in TOKEN.findall(value):
                    if token in SHARED:
                        spelled.append(f"{module.relative_to(ROOT)}:{line}: {token}")
    assert spelled == []


def test_the_templates_see_every_name() -> None:
    env = _environment()
    template = env.from_string("{{ names.OUTBOUND_CONTEXT }} {{ names.ROUTE_VAR|ref }}")
    assert template.render() == f"{names.OUTBOUND_CONTEXT} ${{{names.ROUTE_VAR}}}"


def test_the_outbound_context_has_one_definition() -> None:
    # What a `git grep` for the quoted outbound context shows: its definition in
    # dialplan/names.py only (recorded fixtures and golden files are Asterisk's data).
    quoted = f'"{names.OUTBOUND_CONTEXT}"'
    found = [
        str(path.relative_to(ROOT))
        for folder in (*CODE_DIRS, "bench", "conf_templates", "tests")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file()
        and path.suffix in {".py", ".j2", ".js", ".html"}
        and quoted in path.read_text(encoding="utf-8")
    ]
    assert found == ["dialplan/names.py"]
