"""Reads a Dockerfile and a .dockerignore for tests, with Docker's rules where they matter.

Dockerfile: one instruction per logical line (a trailing backslash continues it; a line that
starts with # is a comment, also inside a continuation), grouped by build stage. Exec-form
arguments (a JSON array) are decoded; `--flag=value` options of COPY/ADD/HEALTHCHECK are kept
apart from the arguments.

.dockerignore: patterns relative to the context root (a leading / and a trailing / dropped),
`*`, `?` and `[...]` within one path segment, `**` across segments, `!` re-includes. A pattern
matches a path or any of its parent folders, and the last matching pattern decides: Docker's
own semantics (moby/patternmatcher, MatchesOrParentMatches).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, COPY, RUN...
    text: str  # the arguments as written, continuations joined
    line: int  # where it starts, 1-based

    def flags_and_args(self) -> tuple[dict[str, str], list[str]]:
        """`--from=x --chown=y a b` -> ({"from": "x", "chown": "y"}, ["a", "b"]); exec form
        (a JSON array) -> ({}, the array)."""
        flags: dict[str, str] = {}
        words = shlex.split(self.text)
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        rest = " ".join(words)
        if rest.startswith("["):
            return flags, list(json.loads(rest))
        return flags, words

    def exec_form(self) -> list[str]:
        """CMD/ENTRYPOINT/HEALTHCHECK CMD arguments; the shell form is refused (it runs through
        /bin/sh -c, which neither Lambda's Command nor ECS's Command replaces cleanly)."""
        text = self.text
        if self.keyword == "HEALTHCHECK":
            _, args = self.flags_and_args()
            if not args or args[0] != "CMD":
                raise ValueError(f"line {self.line}: HEALTHCHECK without CMD")
            text = self.text[self.text.index("CMD") + 3 :].strip()
        if not text.startswith("["):
            raise ValueError(f"line {self.line}: {self.keyword} is not in exec (JSON) form")
        value = json.loads(text)
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"line {self.line}: {self.keyword} is not a JSON array of strings")
        return value


@dataclass
class Stage:
    name: str | None  # FROM ... AS name
    base: str  # the image or stage it starts from, build arguments substituted
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments and blank lines, also between continued lines
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        yield start, " ".join(p for p in pending if p)
        pending = []
    if pending:
        raise ValueError(f"line {start}: the file ends inside a continued instruction")


def parse_dockerfile(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, in order; ARGs before the first FROM are substituted into
    FROM lines (their defaults: what a build without --build-arg uses)."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, logical in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, rest = logical.partition(" ")
        instruction = Instruction(keyword.upper(), rest.strip(), line)
        if instruction.keyword == "ARG" and not stages:
            name, _, default = instruction.text.partition("=")
            args[name] = default
        elif instruction.keyword == "FROM":
            words = instruction.text.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], words[0])
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(alias, base))
        elif not stages:
            raise ValueError(f"{path}:{line}: {instruction.keyword} before the first FROM")
        else:
            stages[-1].instructions.append(instruction)
    return stages


def stage_chain(stages: list[Stage], name: str) -> list[Stage]:
    """The stage called `name` and the stages it is built on, base first."""
    by_name = {s.name: s for s in stages if s.name}
    chain = [by_name[name]]
    while chain[0].base in by_name:
        chain.insert(0, by_name[chain[0].base])
    return chain


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exclude: bool
    text: str


def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # **/ : any number of leading folders, none included
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.index("]", i)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


class DockerIgnore:
    def __init__(self, text: str) -> None:
        self.patterns: list[_Pattern] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclude = not line.startswith("!")
            body = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
            self.patterns.append(_Pattern(_compile(body), exclude, body))

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        return cls(path.read_text(encoding="utf-8"))

    def excluded(self, relative: str) -> bool:
        """Whether the file or folder at this context-relative path stays out of the build."""
        parents = []
        parent = posixpath.dirname(relative)
        while parent:
            parents.append(parent)
            parent = posixpath.dirname(parent)
        decided = False
        for pattern in self.patterns:
            if pattern.regex.match(relative) or any(pattern.regex.match(p) for p in parents):
                decided = pattern.exclude
        return decided

    def _may_reinclude_under(self, folder: str) -> bool:
        """Whether a `!` pattern could match something inside an excluded folder."""
        for pattern in self.patterns:
            if pattern.exclude:
                continue
            literal = re.split(r"[*?\[]", pattern.text, maxsplit=1)[0]
            if literal.startswith(folder + "/") or folder.startswith(literal.rstrip("/")):
                return True
        return False

    def context_files(self, root: Path) -> list[str]:
        """Every file of `root` a build with this context sends, context-relative, sorted."""
        kept: list[str] = []
        for current, folders, files in os.walk(root):
            base = Path(current).relative_to(root).as_posix()
            prefix = "" if base == "." else base + "/"
            folders[:] = [
                f
                for f in folders
                if not self.excluded(prefix + f) or self._may_reinclude_under(prefix + f)
            ]
            kept.extend(prefix + f for f in files if not self.excluded(prefix + f))
        return sorted(kept)
