"""The README's table of the API in three languages matches the public methods
of the Rust library (read from its source), the Python module (introspected)
and the Node package (its generated index.d.ts)."""

import re

import docker_machine

from conftest import REPO

IDENT = re.compile(r"^`([A-Za-z_][A-Za-z0-9_]*)`$")


def readme_table():
    """{'Store': [(rust, python, node)], 'Host': [...]}: cells that are one
    identifier in backticks, or None for '—'."""
    text = (REPO / "README.md").read_text()
    section = text.split("### One API in three languages", 1)[1].split("\n## ", 1)[0]
    rows = {"Store": [], "Host": []}
    current = "Store"
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("| Rust"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")][:3]
        names = []
        for c in cells:
            m = IDENT.match(c)
            names.append(m.group(1) if m else (None if c == "—" else "?"))
        if names == ["Host", "Host", "Host"]:
            current = "Host"
            continue
        if "?" in names:
            continue  # a constructor written as a call
        rows[current].append(tuple(names))
    return rows


def rust_methods(type_name, files):
    """Public methods declared in `impl TYPE {` blocks (rustfmt layout)."""
    found = set()
    for f in files:
        inside = False
        for line in (REPO / f).read_text().splitlines():
            if line == f"impl {type_name} {{":
                inside = True
            elif inside and line == "}":
                inside = False
            elif inside:
                m = re.match(r"^    pub (?:async )?fn ([a-z_0-9]+)", line)
                if m:
                    found.add(m.group(1))
    return found


def node_methods(class_name):
    dts = (REPO / "bindings-node" / "index.d.ts").read_text()
    body = dts.split(f"export declare class {class_name} {{", 1)[1].split("\n}", 1)[0]
    found = set()
    for line in body.splitlines():
        m = re.match(r"^  (?:get )?([A-Za-z_][A-Za-z0-9_]*)\(", line)
        if m and m.group(1) != "constructor":
            found.add(m.group(1))
    return found


def python_methods(cls):
    return {n for n in dir(cls) if not n.startswith("_")}


def column(rows, i):
    return {r[i] for r in rows if r[i] is not None}


def test_the_table_lists_every_public_method_of_each_language():
    table = readme_table()
    assert len(table["Store"]) >= 8 and len(table["Host"]) >= 19, table
    rust = {
        "Store": rust_methods(
            "Store",
            ["machine-core/src/store/machines.rs", "machine-core/src/host/sshconfig.rs", "machine-core/src/host/portable.rs"],
        ),
        "Host": rust_methods(
            "Host",
            [
                "machine-core/src/host/mod.rs",
                "machine-core/src/host/provisioning.rs",
                "machine-core/src/host/swarm.rs",
                "machine-core/src/host/sshconfig.rs",
                "machine-core/src/host/context.rs",
                "machine-core/src/host/portable.rs",
            ],
        ),
    }
    python = {"Store": python_methods(docker_machine.Store), "Host": python_methods(docker_machine.Host)}
    node = {"Store": node_methods("Store"), "Host": node_methods("Host")}
    for kind in ("Store", "Host"):
        rows = table[kind]
        # Store::open is the constructor row; every other public method is a row
        assert column(rows, 0) | ({"open"} if kind == "Store" else set()) == rust[kind], kind
        assert column(rows, 1) == python[kind], kind
        assert column(rows, 2) == node[kind], kind


def test_python_and_node_names_are_the_same_names():
    """Node's names are Python's in camelCase, row by row."""

    def camel(name):
        head, *rest = name.split("_")
        return head + "".join(w.capitalize() for w in rest)

    for rows in readme_table().values():
        for rust, py, node in rows:
            if py is not None and node is not None:
                assert camel(py) == node, (rust, py, node)
            if rust is not None and py is not None and rust not in ("files", "drivers_mut"):
                assert rust == py, (rust, py)
