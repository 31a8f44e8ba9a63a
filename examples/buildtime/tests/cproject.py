"""Frozen: writes the C project that the build is timed on (seeded, so every build compiles the
same code).

A shared header of inline helpers, MODULES source files with loops, switches, tables and
floating point (unique names, so the files can also be built as one unit), and a main that
prints one checksum. No undefined behaviour and no libm beyond sqrt, so every correct build
prints the same line.
"""

from __future__ import annotations

import random
from pathlib import Path

MODULES = 16
SEED = 2026

HEADER = """\
#ifndef COMMON_H
#define COMMON_H
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static inline uint32_t rotl32(uint32_t x, unsigned r) { return (x << (r & 31)) | (x >> ((32 - r) & 31)); }
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}
static inline uint64_t fold_double(uint64_t h, double d) {
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return mix64(h ^ bits);
}
typedef struct { uint32_t v[64]; } block_t;
static inline void block_fill(block_t *b, uint64_t seed) {
    for (int i = 0; i < 64; i++) { seed = mix64(seed + (uint64_t)i); b->v[i] = (uint32_t)seed; }
}
{decls}
#endif
"""


def _mix(rng: random.Random, name: str) -> str:
    ops = []
    for _ in range(rng.randint(10, 18)):
        kind = rng.randrange(4)
        if kind == 0:
            ops.append(f"x ^= x >> {rng.randint(3, 17)};")
        elif kind == 1:
            ops.append(f"x *= 0x{rng.getrandbits(32) | 1:08x}u;")
        elif kind == 2:
            ops.append(f"x += rotl32(x, {rng.randint(1, 31)});")
        else:
            ops.append(f"x = (x & 1u) ? x ^ 0x{rng.getrandbits(32):08x}u : x + {rng.randint(1, 999)}u;")
    body = "\n    ".join(ops)
    return f"static uint32_t {name}(uint32_t x) {{\n    {body}\n    return x;\n}}\n"


def _machine(rng: random.Random, name: str) -> str:
    states = rng.randint(6, 10)
    cases = []
    for s in range(states):
        a, b = rng.randrange(states), rng.randrange(states)
        cases.append(
            f"        case {s}: acc = acc * {rng.randint(3, 97)}u + c; "
            f"state = (c & {1 << rng.randrange(8)}u) ? {a} : {b}; break;"
        )
    return (
        f"static uint32_t {name}(const block_t *b) {{\n"
        "    uint32_t acc = 0, state = 0;\n"
        "    for (int i = 0; i < 256; i++) {\n"
        "        uint32_t c = b->v[i & 63] >> (i & 7);\n"
        "        switch (state) {\n" + "\n".join(cases) + "\n"
        "        default: state = 0;\n"
        "        }\n    }\n    return acc ^ state;\n}\n"
    )


def _matrix(rng: random.Random, name: str) -> str:
    n = rng.choice((4, 6, 8))
    return (
        f"static uint32_t {name}(const block_t *b) {{\n"
        f"    uint32_t m[{n}][{n}], r[{n}][{n}];\n"
        f"    for (int i = 0; i < {n}; i++)\n"
        f"        for (int j = 0; j < {n}; j++) m[i][j] = b->v[(i * {n} + j) & 63] % {rng.randint(50, 500)}u;\n"
        f"    for (int i = 0; i < {n}; i++)\n"
        f"        for (int j = 0; j < {n}; j++) {{\n"
        f"            uint32_t s = 0;\n"
        f"            for (int k = 0; k < {n}; k++) s += m[i][k] * m[k][j] + {rng.randint(1, 9)}u;\n"
        f"            r[i][j] = s;\n"
        f"        }}\n"
        f"    uint32_t h = 0;\n"
        f"    for (int i = 0; i < {n}; i++) h = rotl32(h, 5) ^ r[i][(i * {rng.randint(1, 7)}) % {n}];\n"
        f"    return h;\n}}\n"
    )


def _poly(rng: random.Random, name: str) -> str:
    coefs = [f"{rng.uniform(-2, 2):.6f}" for _ in range(rng.randint(6, 11))]
    horner = "c[0]"
    return (
        f"static double {name}(const block_t *b) {{\n"
        f"    static const double c[] = {{{', '.join(coefs)}}};\n"
        f"    double total = 0.0;\n"
        f"    for (int i = 0; i < 64; i++) {{\n"
        f"        double x = (double)(b->v[i] % 1000u) / {rng.randint(900, 1100)}.0, y = {horner};\n"
        f"        for (int k = 1; k < {len(coefs)}; k++) y = y * x + c[k];\n"
        f"        total += sqrt(y * y + {rng.uniform(0.5, 3):.4f}) / (1.0 + x);\n"
        f"    }}\n    return total;\n}}\n"
    )


def _table(rng: random.Random, name: str) -> str:
    values = ", ".join(f"0x{rng.getrandbits(32):08x}u" for _ in range(256))
    return (
        f"static uint32_t {name}(const block_t *b) {{\n"
        f"    static const uint32_t t[256] = {{{values}}};\n"
        "    uint32_t h = 0;\n"
        f"    for (int i = 0; i < 64; i++) h = (h >> 8) ^ t[(h ^ b->v[i]) & 255u] ^ t[b->v[i] >> 24];\n"
        "    return h;\n}\n"
    )


def module_source(index: int, rng: random.Random) -> str:
    p = f"m{index:02d}"
    parts, calls = [f'#include "common.h"\n'], []
    for k in range(rng.randint(1, 2)):
        parts.append(_mix(rng, f"{p}_mix{k}"))
    for k, make in enumerate((_machine, _matrix, _poly, _table)):
        name = f"{p}_step{k}"
        parts.append(make(rng, name))
        calls.append(name)
    mixes = [f"{p}_mix{k}" for k in range(len(parts) - 1 - len(calls))]
    lines = []
    for name in calls:
        mix = rng.choice(mixes)
        if name == calls[2]:  # the floating-point step
            lines.append(f"        h = fold_double(h, {name}(&b));")
        else:
            lines.append(f"        h = mix64(h + {mix}({name}(&b)));")
    parts.append(
        f"uint64_t {p}_run(uint64_t seed) {{\n"
        "    block_t b; uint64_t h = seed;\n"
        f"    for (int round = 0; round < {rng.randint(40, 60)}; round++) {{\n"
        "        block_fill(&b, h);\n" + "\n".join(lines) + "\n    }\n    return h;\n}\n"
    )
    return "\n".join(parts)


MAIN = """\
#include "common.h"

int main(void) {
    uint64_t h = UINT64_C(0x243f6a8885a308d3);
{calls}
    printf("checksum %016llx\\n", (unsigned long long)h);
    return 0;
}
"""


def write_project(dest: Path) -> list[Path]:
    """Write the project into ``dest``; returns the .c files, main.c last."""
    rng = random.Random(SEED)
    dest.mkdir(parents=True, exist_ok=True)
    decls = "\n".join(f"uint64_t m{i:02d}_run(uint64_t seed);" for i in range(MODULES))
    (dest / "common.h").write_text(HEADER.replace("{decls}", decls))
    sources = []
    for i in range(MODULES):
        path = dest / f"m{i:02d}.c"
        path.write_text(module_source(i, rng))
        sources.append(path)
    calls = "\n".join(f"    h = mix64(h ^ m{i:02d}_run(h));" for i in range(MODULES))
    main = dest / "main.c"
    main.write_text(MAIN.replace("{calls}", calls))
    return [*sources, main]
