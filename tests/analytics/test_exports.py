import lq.analytics as A
from lq.analytics import streaming


def test_every_public_name_is_exported_and_documented():
    for name in A.__all__:
        obj = getattr(A, name)
        if callable(obj) and not isinstance(obj, type(A)):
            assert obj.__doc__, f"{name} has no docstring"
    for name in streaming.__all__:
        assert getattr(streaming, name).__doc__


def test_analytics_imports_no_io_layers():
    import ast
    from pathlib import Path

    for path in Path(A.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                for name in names:
                    assert not name.startswith(("lq.store", "lq.feeds", "lq.collector")), path
