"""The binding against the committed header: every C function declared with the header's
types, and the exception table generated from the header's `docauth_result` enum."""

from __future__ import annotations

import ctypes
import re

import binding_paths  # noqa: F401 - puts gen_errors on sys.path
import gen_errors
import pytest
from binding_paths import HEADER

import docauth
from docauth import _ffi, errors

_SCALARS = {
    "void": None,
    "char *": ctypes.c_char_p,
    "uint8_t *": _ffi.u8p,
    "size_t": ctypes.c_size_t,
    "int64_t": ctypes.c_int64,
    "uint64_t": ctypes.c_uint64,
    "int32_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "int": ctypes.c_int,
    "bool": ctypes.c_bool,
    "enum docauth_result": _ffi.c_result,
    "docauth_result": _ffi.c_result,
    "void *": ctypes.c_void_p,
    # A plain integer typedef (not an enum: an unknown value must be an error, not UB).
    "docauth_metrics_format": ctypes.c_uint32,
}


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def header_functions() -> dict[str, tuple[str, list[str]]]:
    """name -> (return type, [parameter types]) for every prototype in the header."""
    text = _strip_comments(HEADER.read_text())
    out = {}
    for m in re.finditer(r"^([A-Za-z_][\w \t\*]*?)\b(docauth_\w+)\s*\(([^)]*)\)\s*;", text, re.M):
        ret, name, params = m.group(1), m.group(2), m.group(3).strip()
        types = []
        if params and params != "void":
            for p in params.split(","):
                p = " ".join(p.split())
                # drop the parameter name: the last identifier, keeping the stars
                pm = re.fullmatch(r"(.*?[\s\*])([A-Za-z_]\w*)", p)
                assert pm, f"cannot parse parameter {p!r} of {name}"
                types.append(pm.group(1))
        out[name] = (ret, types)
    return out


def c_to_ctypes(c_type: str):
    t = " ".join(c_type.replace("const", " ").split())
    t = re.sub(r"\s*\*", " *", t).replace("* *", "**").strip()
    if t in _SCALARS:
        return _SCALARS[t]
    if re.fullmatch(r"docauth_\w+_fn", t) and hasattr(_ffi, t):
        return getattr(_ffi, t)  # a callback typedef: its CFUNCTYPE
    m = re.fullmatch(r"(?:struct )?(docauth_\w+) (\*+)", t)
    if m and hasattr(_ffi, m.group(1)):
        ty = getattr(_ffi, m.group(1))
        for _ in m.group(2):
            ty = ctypes.POINTER(ty)
        return ty
    raise AssertionError(f"no ctypes mapping for C type {c_type!r}")


def test_header_parser_finds_the_basics():
    funcs = header_functions()
    # Guard against a parser that silently finds nothing.
    assert funcs["docauth_bytes_len"] == ("size_t ", ["const struct docauth_bytes *"])
    assert funcs["docauth_version"][1] == []
    assert len(funcs) >= 8


def test_every_header_function_is_declared_with_the_header_types():
    funcs = header_functions()
    undeclared = sorted(set(funcs) - set(_ffi.SIGNATURES))
    assert not undeclared, f"functions in include/docauth.h not declared in _ffi.SIGNATURES: {undeclared}"
    for name, (ret, params) in funcs.items():
        restype, argtypes = _ffi.SIGNATURES[name]
        assert len(argtypes) == len(params), f"{name}: arity {len(argtypes)} != header {len(params)}"
        assert restype is c_to_ctypes(ret), f"{name}: restype {restype} != header {ret!r}"
        for i, (declared, c_type) in enumerate(zip(argtypes, params)):
            assert declared is c_to_ctypes(c_type), f"{name} arg {i}: {declared} != header {c_type!r}"


def test_no_declaration_without_a_header_function():
    extra = sorted(set(_ffi.SIGNATURES) - set(header_functions()))
    assert not extra, f"_ffi.SIGNATURES declares functions the header lacks: {extra}"


def test_error_table_equals_the_header_enum():
    enum = gen_errors.parse_result_enum(HEADER.read_text())
    assert [(n, c) for n, c, _ in enum] == [(n, c) for n, c, _ in errors.CODES]
    assert (0, "DOCAUTH_RESULT_OK") in [(n, c) for n, c, _ in enum]


def test_generated_errors_module_is_fresh():
    expected = gen_errors.render(gen_errors.parse_result_enum(HEADER.read_text()))
    assert gen_errors.OUTPUT.read_text() == expected, "run: python bindings/python/gen_errors.py"


def test_one_distinct_exception_class_per_code():
    classes = [cls for num, _, cls in errors.CODES if num != 0]
    assert all(cls is not None and issubclass(cls, docauth.DocauthError) for cls in classes)
    assert len(set(classes)) == len(classes)
    for num, cname, cls in errors.CODES:
        if num == 0:
            assert cls is None
            continue
        assert cls.code == num and cls.name == cname
        assert errors.error_class(num) is cls
        assert getattr(docauth, cls.__name__) is cls
    assert errors.error_class(4242) is docauth.DocauthError


@pytest.mark.parametrize("num,cname,cls", [c for c in errors.CODES if c[0] != 0])
def test_library_agrees_on_each_code_name(num, cname, cls):
    assert docauth.result_name(num) == cname


def test_library_unknown_code_name():
    assert docauth.result_name(4242) == "DOCAUTH_RESULT_UNKNOWN"


def header_struct_fields(name: str) -> list[tuple[str, str]]:
    """[(C type, field)] of `typedef struct NAME { ... } NAME;` in the committed header."""
    text = _strip_comments(HEADER.read_text())
    m = re.search(r"typedef struct %s \{(?P<body>.*?)\} %s;" % (name, name), text, re.S)
    assert m, f"the header has no struct {name}"
    fields = []
    for decl in m.group("body").split(";"):
        decl = " ".join(decl.split())
        if decl:
            ctype, field = decl.rsplit(" ", 1)
            fields.append((ctype, field))
    return fields


def test_session_stats_structure_is_the_headers():
    """The ctypes declaration of docauth_session_stats must be the header's, field by field
    in order: docauth_session_wait writes through it."""
    header = [(field, c_to_ctypes(ctype)) for ctype, field in header_struct_fields("docauth_session_stats")]
    assert len(header) >= 7  # guards against a parser that finds nothing
    assert list(_ffi.docauth_session_stats._fields_) == header
