"""What the grader knows before running anything: the pristine curriculum, a submission's section, its plan.

* `Pristine` is taken once, before any submission runs: the bytes (and hashes) of every curriculum file a
  grading kernel needs, staged in a private folder, and for each section what its source says: the
  exercises, each check's function and the name it is given (`tests.part1_superposition.test_forward(ToyModel)`),
  the cells of its exercise and solution notebooks.
* `identify` decides a submission's section from its metadata, cross-checked against its file name and its
  contents (the section's own markdown cells and check calls), and says where they disagree.
* `make_plan` turns a submission into the steps a runner executes: each code cell (experiments left out)
  and, right after the last cell that calls an exercise's check, the grader's own call of that check.
  The exercises always come from the section, so a deleted check cell leaves its exercise "not attempted".
* `review_flags` lists, for the instructor, what in the cells a learner wrote looks like an attempt on the
  grader, or is the reference solution pasted in.
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import tempfile
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from utils.paths import CHECK_CALL, ROOT, section_names

STAGED_TOP_LEVEL = ("plotly_utils.py",)
STAGED_FOLDERS = ("utils", "tests", "solutions")
CHECK_MODULE = re.compile(r"tests\.(\w+)\.test_\w+")
FENCE = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
# What in a learner's own cell deserves a look (never changes a grade): ways to reach into the grader, the
# environment, other processes or the reference.
SUSPICIOUS = {
    "sys.modules": r"\bsys\.modules\b",
    "builtins": r"\bbuiltins\b|__builtins__",
    "gc": r"\bgc\.",
    "ctypes": r"\bctypes\b",
    "frames": r"_getframe|\bf_back\b|\bf_globals\b|\bf_locals\b",
    "tracing": r"\bsettrace\b|\bsetprofile\b",
    "environment": r"\bos\.environ\b|\bgetenv\b|/proc/",
    "processes": r"\bsubprocess\b|\bos\.fork\b|\bos\.system\b|\bos\.kill\b|\bmultiprocessing\b|\bos\.exec",
    "dynamic code": r"\bexec\(|\bcompile\(|\b__import__\b|\bimportlib\b",
    "the checkers' internals": r"\btests\.checking\b|\b_record\b|GRADE_LOG",
    "network": r"\bsocket\b|\burllib\b|\brequests\b|\bhttp\.client\b",
    "replaced library functions": r"^\s*(torch|np|numpy|einops|math|F)\.[\w.]+\s*=(?!=)",
}


def normalise(source: str) -> str:
    return " ".join(source.split())


def section_order(name: str) -> int:
    names = section_names()
    return names.index(name) if name in names else len(names)


@dataclass
class SectionInfo:
    name: str
    checks: list[tuple[str, str]]  # (checker function, the expression its check cell passes), in order
    experiment_cells: set[str] = field(default_factory=set)  # normalised sources
    exercise_code_cells: set[str] = field(default_factory=set)
    markdown_cells: set[str] = field(default_factory=set)
    solution_code_cells: set[str] = field(default_factory=set)
    solution_bodies: list[str] = field(default_factory=list)  # normalised code between the solution fences

    @property
    def exercises(self) -> list[str]:
        return [func.removeprefix("test_") for func, _ in self.checks]


class Pristine:
    """The curriculum as it was when grading began, staged where no submission can reach it."""

    def __init__(self, root: Path = ROOT):
        from tools.notebooks import build, section

        self.root = root
        self.files: dict[str, bytes] = {}
        for name in STAGED_TOP_LEVEL:
            self.files[name] = (root / name).read_bytes()
        for folder in STAGED_FOLDERS:
            for path in sorted((root / folder).rglob("*")):
                rel = path.relative_to(root).as_posix()
                if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".ipynb"):
                    continue
                if folder == "tests" and (path.name.startswith("test_") or path.name == "conftest.py"):
                    continue
                self.files[rel] = path.read_bytes()
        self.hashes = {rel: hashlib.sha256(data).hexdigest() for rel, data in self.files.items()}
        self._tmp = tempfile.TemporaryDirectory(prefix="grade-pristine-")
        self.staging = Path(self._tmp.name)
        for rel, data in self.files.items():
            path = self.staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.sections: dict[str, SectionInfo] = {}
        self.broken: dict[str, str] = {}
        for name in section_names():
            try:
                info = SectionInfo(name, _checks(self.files[f"solutions/{name}.py"].decode(), name))
                if f"tests/{name}.py" not in self.files:
                    raise FileNotFoundError(f"tests/{name}.py is missing")
                exercise, solution = build(section(name), exercise=True), build(section(name), exercise=False)
            except Exception as err:
                self.broken[name] = f"{type(err).__name__}: {err}"
                continue
            for cell in exercise.cells:
                text = normalise(cell.source)
                if cell.cell_type == "markdown" and len(text) > 40:
                    info.markdown_cells.add(text)
                elif cell.cell_type == "code":
                    info.exercise_code_cells.add(text)
                    if "experiment" in cell.metadata.get("tags", []):
                        info.experiment_cells.add(text)
            for cell in solution.cells:
                if cell.cell_type == "code":
                    info.solution_code_cells.add(normalise(cell.source))
                    info.solution_bodies += [
                        normalise(b) for b in FENCE.findall(cell.source) if len(normalise(b)) >= 80
                    ]
            self.sections[name] = info

    def manifest(self, section: str) -> dict[str, str]:
        """The files a kernel grading `section` gets: no later section's reference or checkers."""
        order = section_order(section)

        def wanted(rel: str) -> bool:
            folder, _, name = rel.partition("/")
            if folder not in ("solutions", "tests"):
                return True
            owner = max(
                (s for s in section_names() if name == f"{s}.py" or name.startswith(f"{s}_")), key=len, default=None
            )
            return owner is None or section_order(owner) <= order

        return {rel: digest for rel, digest in self.hashes.items() if wanted(rel)}

    def changed_in(self, root: Path) -> list[str]:
        """The staged files whose bytes in `root` now differ from when grading began."""
        changed = []
        for rel, data in self.files.items():
            path = root / rel
            if not path.is_file() or path.read_bytes() != data:
                changed.append(rel)
        return changed

    def close(self) -> None:
        self._tmp.cleanup()


def _checks(source: str, section: str) -> list[tuple[str, str]]:
    checks: dict[str, str] = {}
    for module, func, argument in CHECK_CALL.findall(source):
        if module == section:
            checks.setdefault(func, argument.strip())
    return list(checks.items())


# --------------------------------------------------------------------------------------------
# Which section a submission is
# --------------------------------------------------------------------------------------------
@dataclass
class Identity:
    section: str | None
    claimed: str | None = None  # what the metadata says
    by_name: str | None = None  # what the file name says
    by_contents: str | None = None
    notes: list[str] = field(default_factory=list)


def section_in_name(stem: str, known: list[str]) -> str | None:
    """The section a file name names: in full (`alice_part1_superposition`) or by its number (`part5a`)."""
    full = [s for s in known if s in stem]
    if full:
        return max(full, key=len)
    numbers = {s.split("_")[0]: s for s in known}
    found = {numbers[m] for m in re.findall(r"part\d+[a-z]?", stem.lower()) if m in numbers}
    return found.pop() if len(found) == 1 else None


def identify(nb: nbformat.NotebookNode, filename: str, pristine: Pristine) -> Identity:
    known = list(pristine.sections)
    meta = nb.metadata.get("curriculum", {}) if isinstance(nb.metadata.get("curriculum"), dict) else {}
    claimed = meta.get("section") or Path(str(meta.get("source", ""))).stem or None
    claimed = claimed if claimed in known or claimed in pristine.broken else None
    by_name = section_in_name(Path(filename).stem, [*known, *pristine.broken])
    markdown = {normalise(c.source) for c in nb.cells if c.cell_type == "markdown"}
    calls: dict[str, int] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            for module in CHECK_MODULE.findall(_without_comments(cell.source)):
                calls[module] = calls.get(module, 0) + 1
    scores = {s: len(markdown & info.markdown_cells) + 3 * calls.get(s, 0) for s, info in pristine.sections.items()}
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    by_contents = (
        ranked[0][0] if ranked and ranked[0][1] > 0 and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]) else None
    )
    section = by_contents or claimed or by_name
    identity = Identity(section, claimed, by_name, by_contents)
    if section is None:
        identity.notes.append("could not tell which section this notebook is (no curriculum metadata, cells or name)")
        return identity
    if claimed and claimed != section:
        identity.notes.append(f"its metadata says {claimed}, but its cells are {section}'s")
    if by_name and by_name != section:
        identity.notes.append(f"its file name says {by_name}, but it is a notebook of {section}")
    return identity


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------
def _without_comments(source: str) -> str:
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type != tokenize.COMMENT]
        return tokenize.untokenize(tokens)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return "\n".join(line.split("#", 1)[0] for line in source.splitlines())


def calls_check(source: str, section: str, func: str) -> bool:
    """Whether a cell uses the check `func`: `tests.<section>.func(...)`, imported under its name, or in a loop."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics, or a syntax error: read the text instead
        uses = re.finditer(
            rf"(?:\btests\.(\w+)\.)?(?<![\w.]){func}\b|\btests\.(\w+)\.{func}\b", _without_comments(source)
        )
        return any((m.group(1) or m.group(2)) in (None, section) for m in uses)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == func:
            return True
        if isinstance(node, ast.Attribute) and node.attr == func:
            owner = ast.unparse(node.value)
            if owner.split(".")[-1] == section or not owner.startswith("tests."):
                return True
    return False


@dataclass
class Plan:
    steps: list[dict]
    unchecked: list[str]  # checker functions no cell calls


def make_plan(nb: nbformat.NotebookNode, info: SectionInfo) -> Plan:
    code = [(number, cell) for number, cell in enumerate(nb.cells, start=1) if cell.cell_type == "code"]
    last_call = {}
    for number, cell in code:
        for func, _ in info.checks:
            if calls_check(cell.source, info.name, func):
                last_call[func] = number
    steps = []
    for number, cell in code:
        skipped = "experiment" in cell.metadata.get("tags", []) or normalise(cell.source) in info.experiment_cells
        if cell.source.strip() and not skipped:
            steps.append({"kind": "cell", "cell": number, "source": cell.source})
        for func, expression in info.checks:
            if last_call.get(func) == number:
                steps.append({"kind": "check", "cell": number, "func": func, "expression": expression})
    return Plan(steps, [func for func, _ in info.checks if func not in last_call])


def review_flags(nb: nbformat.NotebookNode, info: SectionInfo) -> list[str]:
    flags = []
    for number, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        text = normalise(cell.source)
        if text in info.exercise_code_cells:
            continue  # as generated
        if "### BEGIN SOLUTION" in cell.source or any(body in text for body in info.solution_bodies):
            flags.append(f"cell {number} holds the reference solution's code verbatim")
        if text in info.solution_code_cells:
            continue
        found = [what for what, pattern in SUSPICIOUS.items() if re.search(pattern, cell.source, re.M)]
        if re.search(rf"\bsolutions\.{info.name}\b", cell.source):
            found.append(f"this section's reference (solutions.{info.name})")
        if found:
            flags.append(f"cell {number} uses {', '.join(found)}")
    return flags
