#!/usr/bin/env python3
"""Checks the deployment files without helm or a Docker engine (ctest DeployChecks).

    python3 scripts/check_deploy.py [REPO_ROOT]

1. Every YAML file in the repository that is not a Helm template parses
   (*.yaml, *.yml, .clang-format, .clang-tidy).
2. helm/*/values.yaml parses, every key in it has a comment (above it or on
   its line; children of free-form maps excepted), every `.Values.a.b`
   referenced in the chart's templates exists in it, and every value in it is
   referenced by some template (a value nothing reads is a lie in the docs).
3. Templates are well formed as far as text can tell: `{{` and `}}` pair up,
   parentheses and quotes balance inside each action, `if/range/with/define/
   block` each meet their `end`, `else` only inside them, and every
   `include`/`template` names a `define` of the chart.
4. The build stage of every Dockerfile under docker/ installs exactly the
   package list of scripts/deps.sh (parsed from both), README.md lists the
   same packages, and every image's final stage runs as a non-root user.
5. Secrets stay out of command lines (/proc/PID/cmdline is readable by every
   process on the node): no template passes --requirepass or a
   $(...PASSWORD/TOKEN/SECRET...) expansion; the worker Deployment drops
   privileges (--run-as) so its phases cannot read its secret files; the
   metrics listener binds a configurable address, not a fixed 0.0.0.0.

Exits 0 when all hold, 1 with one line per problem otherwise.
"""
import os
import re
import shlex
import sys

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("check_deploy: python3-yaml is missing (scripts/deps.sh installs it)")

# YAML files without a .yaml name.
YAML_DOTFILES = {".clang-format", ".clang-tidy"}
SKIP_DIRS = {".git", "Testing", "demo", ".sluice", "node_modules", "__pycache__"}
# Keys whose children are free-form Kubernetes objects (documented as a whole).
FREE_FORM = {
    "resources", "podAnnotations", "annotations", "nodeSelector", "tolerations", "affinity",
    "podSecurityContext", "securityContext", "commonLabels", "phaseEnv", "extraEnv", "metrics",
}

# Top-level sections that share a name with a free-form key elsewhere.
TOP_LEVEL_SECTIONS = {"metrics"}

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def rel(root, path):
    return os.path.relpath(path, root)


def walk_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_DIRS and not d.startswith("build"))
        for name in sorted(filenames):
            yield os.path.join(dirpath, name)


def is_helm_template(root, path):
    parts = rel(root, path).split(os.sep)
    return "templates" in parts and parts[0] == "helm"


# --------------------------------------------------------------------------- YAML

def check_yaml_files(root):
    count = 0
    for path in walk_files(root):
        is_yaml = path.endswith((".yaml", ".yml")) or os.path.basename(path) in YAML_DOTFILES
        if not is_yaml or is_helm_template(root, path):
            continue
        count += 1
        try:
            with open(path, encoding="utf-8") as f:
                list(yaml.safe_load_all(f))
        except yaml.YAMLError as e:
            problem(rel(root, path), f"YAML does not parse: {e}".replace("\n", " "))
    return count


# --------------------------------------------------------------------------- values.yaml

KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):(\s|$)")


def check_values_documented(root, values_path):
    """Every key line has a comment directly above it or on the same line."""
    with open(values_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    stack = []  # (indent, key)
    for number, line in enumerate(lines, 1):
        m = KEY_LINE.match(line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parents = [k for _, k in stack]
        stack.append((indent, m.group(2)))
        if any(p in FREE_FORM for p in parents[1:]) or (
                parents and parents[0] in FREE_FORM - TOP_LEVEL_SECTIONS):
            continue
        if "#" in line.split(":", 1)[1]:
            continue
        prev = number - 2
        while prev >= 0 and lines[prev].strip() == "":
            prev -= 1
        if prev >= 0 and lines[prev].strip().startswith("#"):
            continue
        # A map whose every child is documented needs no comment of its own.
        child_indent = None
        documented_children = True
        for later in lines[number:]:
            if later.strip() == "" or later.strip().startswith("#"):
                continue
            lm = KEY_LINE.match(later)
            later_indent = len(later) - len(later.lstrip())
            if later_indent <= indent:
                break
            if child_indent is None:
                child_indent = later_indent
            if lm is None:
                documented_children = False
        if child_indent is not None and documented_children:
            continue
        problem(f"{rel(root, values_path)}:{number}", f"value '{m.group(2)}' has no comment")


VALUES_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def leaf_paths(node, prefix=()):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            if k in FREE_FORM and prefix:
                yield prefix + (k,)
            else:
                yield from leaf_paths(v, prefix + (k,))
    else:
        yield prefix


def check_chart(root, chart_dir):
    values_path = os.path.join(chart_dir, "values.yaml")
    chart_yaml = os.path.join(chart_dir, "Chart.yaml")
    for required in (values_path, chart_yaml):
        if not os.path.isfile(required):
            problem(rel(root, chart_dir), f"missing {os.path.basename(required)}")
            return
    with open(values_path, encoding="utf-8") as f:
        try:
            values = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            problem(rel(root, values_path), f"does not parse: {e}")
            return
    if not isinstance(values, dict):
        problem(rel(root, values_path), "top level is not a map")
        return
    check_values_documented(root, values_path)

    templates_dir = os.path.join(chart_dir, "templates")
    templates = sorted(
        os.path.join(templates_dir, n) for n in os.listdir(templates_dir)
        if os.path.isfile(os.path.join(templates_dir, n)))
    referenced = set()
    defines, includes = set(), []
    for path in templates:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        check_template_syntax(root, path, text, defines, includes)
        for m in VALUES_REF.finditer(text):
            keys = tuple(m.group(1)[1:].split("."))
            referenced.add(keys)
            line = text.count("\n", 0, m.start()) + 1
            node = values
            for depth, key in enumerate(keys):
                if not isinstance(node, dict) or key not in node:
                    problem(f"{rel(root, path)}:{line}",
                            f".Values.{'.'.join(keys)} is not in values.yaml "
                            f"(no '{key}' under '{'.'.join(keys[:depth]) or 'top level'}')")
                    break
                node = node[key]
    for name, (path, line) in includes:
        if name not in defines:
            problem(f"{rel(root, path)}:{line}", f'include/template "{name}" is never defined')
    for leaf in leaf_paths(values):
        if not any(leaf[:len(r)] == r or r[:len(leaf)] == leaf for r in referenced):
            problem(rel(root, values_path), f"value {'.'.join(leaf)} is used by no template")


# --------------------------------------------------------------------------- templates

ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
OPENERS = ("if", "range", "with", "define", "block")


def strip_strings(action):
    """The action with string literals and comments blanked; None if a quote is open."""
    out, i, n = [], 0, len(action)
    while i < n:
        c = action[i]
        if action.startswith("/*", i):
            end = action.find("*/", i + 2)
            if end < 0:
                return None
            i = end + 2
            continue
        if c in "\"`":
            j = i + 1
            while j < n and action[j] != c:
                j += 2 if (c == '"' and action[j] == "\\") else 1
            if j >= n:
                return None
            out.append(" ")
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def check_template_syntax(root, path, text, defines, includes):
    where = rel(root, path)
    opens, closes = text.count("{{"), text.count("}}")
    if opens != closes:
        problem(where, f"unbalanced braces: {opens} '{{{{' but {closes} '}}}}'")
    stack = []
    pos = 0
    for m in ACTION.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        between = text[pos:m.start()]
        if "}}" in between:
            problem(f"{where}:{line}", "'}}' without a matching '{{'")
        pos = m.end()
        body = m.group(1)
        if "{{" in body:
            problem(f"{where}:{line}", "'{{' opened inside another action")
            continue
        body = body.strip()
        if body.startswith("-"):
            body = body[1:]
        if body.endswith("-"):
            body = body[:-1]
        body = body.strip()
        if body.startswith("/*"):
            if not body.endswith("*/"):
                problem(f"{where}:{line}", "comment action not closed with */")
            continue
        for name_m in re.finditer(r'\b(?:include|template)\s+"([^"]+)"', body):
            includes.append((name_m.group(1), (path, line)))
        define_m = re.match(r'(?:define|block)\s+"([^"]+)"', body)
        if define_m:
            defines.add(define_m.group(1))
        plain = strip_strings(body)
        if plain is None:
            problem(f"{where}:{line}", f"unterminated string in {{{{ {body[:40]} }}}}")
            continue
        if plain.count("(") != plain.count(")"):
            problem(f"{where}:{line}", f"unbalanced parentheses in {{{{ {body[:60]} }}}}")
        word = plain.split()[0] if plain.split() else ""
        if word in OPENERS:
            stack.append((word, line))
        elif word == "else":
            if not stack or stack[-1][0] not in ("if", "range", "with"):
                problem(f"{where}:{line}", "'else' outside if/range/with")
        elif word == "end":
            if not stack:
                problem(f"{where}:{line}", "'end' without an opening if/range/with/define")
            else:
                stack.pop()
    if "}}" in text[pos:]:
        problem(where, "'}}' without a matching '{{' after the last action")
    for word, line in stack:
        problem(f"{where}:{line}", f"'{word}' is never closed with 'end'")


# --------------------------------------------------------------------------- packages

def deps_packages(root):
    path = os.path.join(root, "scripts", "deps.sh")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"SLUICE_PACKAGES=\((.*?)\)", text, re.S)
    if not m:
        problem("scripts/deps.sh", "no SLUICE_PACKAGES=( ... ) list found")
        return None
    body = "\n".join(line.split("#", 1)[0] for line in m.group(1).split("\n"))
    return body.split()


def readme_packages(root):
    """The indented package block after 'The Debian packages' in README.md."""
    path = os.path.join(root, "README.md")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if line.startswith("The Debian packages"):
            block, started = [], False
            for later in lines[i + 1:]:
                if later.startswith("    "):
                    started = True
                    block.extend(later.split())
                elif started:
                    break
            return block
    problem("README.md", "no 'The Debian packages' paragraph with the package list")
    return None


def dockerfile_instructions(text):
    """(line number, instruction word, arguments) with continuations joined."""
    out, buf, start = [], "", 0
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, args = buf.partition(" ")
        out.append((start, word.upper(), args.strip()))
        buf = ""
    if buf:
        word, _, args = buf.partition(" ")
        out.append((start, word.upper(), args.strip()))
    return out


def apt_installed(run_args):
    """Packages named by every `apt-get install` in a RUN instruction."""
    packages = []
    try:
        words = shlex.split(run_args)
    except ValueError:
        return None
    i = 0
    while i < len(words):
        if words[i] in ("apt-get", "apt") and "install" in words[i + 1:i + 2]:
            i += 2
            while i < len(words) and words[i] not in ("&&", "||", ";", "|") \
                    and not words[i].endswith(";"):
                if not words[i].startswith("-"):
                    packages.append(words[i])
                i += 1
            if i < len(words) and words[i].endswith(";") and words[i] != ";":
                packages.append(words[i][:-1])
        i += 1
    return packages


def compare(where, got, want, want_name):
    dups = sorted({p for p in got if got.count(p) > 1})
    if dups:
        problem(where, f"packages listed twice: {' '.join(dups)}")
    missing = [p for p in want if p not in got]
    extra = [p for p in got if p not in want]
    if missing:
        problem(where, f"missing packages of {want_name}: {' '.join(missing)}")
    if extra:
        problem(where, f"packages not in {want_name}: {' '.join(extra)}")


def check_dockerfiles(root, deps):
    docker_dir = os.path.join(root, "docker")
    dockerfiles = [p for p in walk_files(docker_dir)
                   if os.path.basename(p).startswith("Dockerfile")] if os.path.isdir(docker_dir) else []
    if not dockerfiles:
        problem("docker/", "no Dockerfiles found")
    with_build_stage = 0
    for path in dockerfiles:
        where = rel(root, path)
        with open(path, encoding="utf-8") as f:
            instructions = dockerfile_instructions(f.read())
        stages = []  # [name, base, instructions]
        for number, word, args in instructions:
            if word == "FROM":
                m = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
                stages.append([m.group(2) if m and m.group(2) else "", m.group(1) if m else "", []])
            elif stages:
                stages[-1][2].append((number, word, args))
        if not stages:
            problem(where, "no FROM instruction")
            continue
        for name, base, body in stages:
            if name.lower() != "build":
                continue
            with_build_stage += 1
            if not base.startswith("debian:bookworm"):
                problem(where, f"build stage is FROM {base}, expected debian:bookworm")
            installed = []
            for number, word, args in body:
                if word == "RUN":
                    got = apt_installed(args)
                    if got is None:
                        problem(f"{where}:{number}", "RUN line does not parse as shell words")
                    else:
                        installed.extend(got)
            if not installed:
                problem(where, "build stage installs no packages with apt-get install")
            elif deps is not None:
                compare(f"{where} (build stage)", installed, deps, "scripts/deps.sh")
        final_users = [args for _, word, args in stages[-1][2] if word == "USER"]
        if not final_users:
            problem(where, "final stage sets no USER (images must not run as root)")
        elif final_users[-1].split(":")[0] in ("root", "0"):
            problem(where, f"final stage runs as {final_users[-1]} (must be non-root)")
    if dockerfiles and with_build_stage == 0:
        problem("docker/", "no Dockerfile has a stage named 'build'")
    ignore = os.path.join(root, ".dockerignore")
    if not os.path.isfile(ignore):
        problem(".dockerignore", "missing (build output would enter the build context)")
    else:
        with open(ignore, encoding="utf-8") as f:
            entries = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        if not any(e.startswith("build") for e in entries):
            problem(".dockerignore", "does not exclude build output (build*/)")


# --------------------------------------------------------------------------- main

# --------------------------------------------------------------------------- secrets

SECRET_EXPANSION = re.compile(r"\$\((\w*(?:PASSWORD|TOKEN|SECRET)\w*)\)")


def check_chart_secrets(root, chart_dir):
    templates = os.path.join(chart_dir, "templates")
    for name in sorted(os.listdir(templates)):
        path = os.path.join(templates, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        where = rel(root, path)
        if "--requirepass" in text:
            problem(where, "passes --requirepass on a command line (argv is world readable)")
        for m in SECRET_EXPANSION.finditer(text):
            problem(where, f"expands $({m.group(1)}) into a command line (argv is world readable)")
        if "--metrics-listen=0.0.0.0" in text:
            problem(where, "binds the metrics listener to 0.0.0.0 with no value to restrict it")
    worker = os.path.join(templates, "worker-deployment.yaml")
    if os.path.exists(worker):
        with open(worker, encoding="utf-8") as f:
            text = f.read()
        if "--run-as=" not in text:
            problem(rel(root, worker), "the worker never drops privileges (--run-as): its phases "
                    "can read its token file")


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    yaml_count = check_yaml_files(root)
    charts = []
    helm_dir = os.path.join(root, "helm")
    if os.path.isdir(helm_dir):
        charts = [os.path.join(helm_dir, d) for d in sorted(os.listdir(helm_dir))
                  if os.path.isdir(os.path.join(helm_dir, d, "templates"))]
    if not charts:
        problem("helm/", "no chart (a directory with templates/) found")
    for chart in charts:
        check_chart(root, chart)
        check_chart_secrets(root, chart)
    deps = deps_packages(root)
    readme = readme_packages(root)
    if deps is not None and readme is not None:
        compare("README.md (package list)", readme, deps, "scripts/deps.sh")
    check_dockerfiles(root, deps)
    if problems:
        print(f"check_deploy: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"check_deploy: ok ({yaml_count} YAML files, {len(charts)} chart(s), "
          f"{len(deps or [])} packages in step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
