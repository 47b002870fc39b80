"""Issue analysis: specialty, complexity, security level and dependencies, with the reasons.

Deliberately simple and explainable: each signal adds a weighted vote and is written down, so an
admin can see why an issue went where it went and adjust labels or keywords.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from coordinator_app.db import INT_MAX

LABEL_WEIGHT, PATH_WEIGHT, KEYWORD_WEIGHT = 10, 3, 1
MIN_SCORE = 2  # below this, the issue goes to a generalist

# Label names (lower case) that name a specialty outright.
LABEL_ALIASES: dict[str, str] = {
    "backend": "backend",
    "api": "backend",
    "server": "backend",
    "frontend": "frontend",
    "ui": "frontend",
    "ux": "frontend",
    "css": "frontend",
    "testing": "testing",
    "tests": "testing",
    "test": "testing",
    "flaky": "testing",
    "devops": "devops",
    "ci": "devops",
    "infrastructure": "devops",
    "deployment": "devops",
    "database": "database",
    "db": "database",
    "migration": "database",
    "sql": "database",
    "security": "security",
    "vulnerability": "security",
    "documentation": "documentation",
    "docs": "documentation",
}

KEYWORDS: dict[str, tuple[str, ...]] = {
    "backend": (
        "endpoint",
        "api",
        "server",
        "handler",
        "route",
        "service",
        "backend",
        "request",
        "response",
        "flask",
        "django",
        "fastapi",
        "json",
        "http",
    ),
    "frontend": (
        "button",
        "page",
        "css",
        "layout",
        "component",
        "react",
        "vue",
        "html",
        "frontend",
        "style",
        "render",
        "browser",
        "ui",
    ),
    "testing": ("test", "tests", "coverage", "pytest", "flaky", "assert", "fixture", "unittest"),
    "devops": (
        "ci",
        "pipeline",
        "docker",
        "deploy",
        "ansible",
        "kubernetes",
        "workflow",
        "github actions",
        "systemd",
        "terraform",
        "build",
    ),
    "database": (
        "database",
        "sql",
        "query",
        "migration",
        "schema",
        "index",
        "postgres",
        "postgresql",
        "table",
        "column",
        "alembic",
    ),
    "security": (
        "security",
        "vulnerability",
        "xss",
        "csrf",
        "injection",
        "secret",
        "auth",
        "authentication",
        "permission",
        "cve",
        "password",
        "token",
    ),
    "documentation": (
        "docs",
        "documentation",
        "readme",
        "typo",
        "docstring",
        "guide",
        "tutorial",
        "changelog",
    ),
}

PATH_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), specialty)
    for pattern, specialty in (
        (r"(^|/)(tests?|spec)/|(^|/)test_[\w-]+\.py$|\.(test|spec)\.[jt]sx?$", "testing"),
        (r"(^|/)(migrations|alembic)/|\.sql$", "database"),
        (r"(^|/)\.github/workflows/|(^|/)Dockerfile$|(^|/)(roles|playbooks)/|\.tf$", "devops"),
        (r"\.(tsx|jsx|vue|css|scss|html)$|(^|/)(components|static|templates)/", "frontend"),
        (r"(^|/)docs?/|\.(md|rst)$", "documentation"),
        (r"\.(py|go|rs|java|rb)$|(^|/)(api|server|app)/", "backend"),
    )
)
PATH_MENTION = re.compile(
    r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.[a-zA-Z]{1,5}|(?:[\w.-]+/)+)(?![\w/])"
)
# An issue number fits the tasks' integer column; "#" and more digits than that name no issue.
DEPENDENCY = re.compile(r"\b(?:depends\s+on|blocked\s+by)\s+#([0-9]{1,10})\b", re.IGNORECASE)
HIGH_COMPLEXITY = (
    "refactor",
    "redesign",
    "architecture",
    "migrate",
    "rewrite",
    "across",
    "performance",
    "concurrency",
)
LOW_COMPLEXITY = ("typo", "rename", "small", "minor", "one-line", "bump", "wording")
COMPLEXITY_LABELS = {
    "complexity:low": "low",
    "complexity:medium": "medium",
    "complexity:high": "high",
    "good first issue": "low",
}


@dataclass
class Analysis:
    """The outcome of analysing one issue."""

    specialty: str
    complexity: str
    security_level: str
    depends_on: list[int]
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"reasons": self.reasons, "scores": self.scores}


def analyze(
    title: str,
    body: str,
    labels: list[str],
    security_labels: dict[str, str] | None = None,
) -> Analysis:
    """Route an issue from its labels, words and the paths it mentions."""
    text = f"{title}\n{body or ''}"
    lowered_labels = [label.lower() for label in labels]
    scores: Counter[str] = Counter()
    reasons: list[str] = []

    for label in lowered_labels:
        specialty = LABEL_ALIASES.get(label)
        if specialty:
            scores[specialty] += LABEL_WEIGHT
            reasons.append(f"label '{label}' → {specialty} (+{LABEL_WEIGHT})")

    for path in sorted(set(PATH_MENTION.findall(text))):
        for pattern, specialty in PATH_RULES:
            if pattern.search(path):
                scores[specialty] += PATH_WEIGHT
                reasons.append(f"mentions {path} → {specialty} (+{PATH_WEIGHT})")
                break

    words = Counter(re.findall(r"[a-z][a-z-]+", text.lower()))
    for specialty, keywords in KEYWORDS.items():
        hits = sorted(k for k in keywords if (" " in k and k in text.lower()) or words[k])
        if hits:
            scores[specialty] += KEYWORD_WEIGHT * len(hits)
            reasons.append(f"words {', '.join(hits)} → {specialty} (+{len(hits)})")

    if scores and max(scores.values()) >= MIN_SCORE:
        # Ties go to the order of SPECIALTIES-like preference in KEYWORDS, for stable results.
        order = list(KEYWORDS)
        specialty = max(scores, key=lambda s: (scores[s], -order.index(s)))
        reasons.append(f"chose {specialty} with score {scores[specialty]}")
    else:
        specialty = "general"
        reasons.append("no strong signal: general")

    complexity = _complexity(text, lowered_labels, reasons)
    security_level = "standard"
    for label, level in (security_labels or {}).items():
        if label.lower() in lowered_labels:
            security_level = level
            reasons.append(f"label '{label}' → security level {level}")
    depends_on = sorted({n for n in map(int, DEPENDENCY.findall(text)) if 0 < n <= INT_MAX})
    if depends_on:
        reasons.append("waits for " + ", ".join(f"#{n}" for n in depends_on))
    return Analysis(specialty, complexity, security_level, depends_on, reasons, dict(scores))


def _complexity(text: str, labels: list[str], reasons: list[str]) -> str:
    for label in labels:
        if label in COMPLEXITY_LABELS:
            reasons.append(f"label '{label}' → complexity {COMPLEXITY_LABELS[label]}")
            return COMPLEXITY_LABELS[label]
    lowered = text.lower()
    paths = len(set(PATH_MENTION.findall(text)))
    high = [w for w in HIGH_COMPLEXITY if w in lowered]
    low = [w for w in LOW_COMPLEXITY if re.search(rf"\b{re.escape(w)}\b", lowered)]
    if high or paths >= 5 or len(text) > 4000:
        why = ", ".join(high) or f"{paths} paths, {len(text)} characters"
        reasons.append(f"complexity high ({why})")
        return "high"
    if low and len(text) < 600:
        reasons.append(f"complexity low ({', '.join(low)})")
        return "low"
    reasons.append("complexity medium")
    return "medium"
