"""Self-test for tools/module_graph.py: `python3 -m unittest tools/test_module_graph.py`
(or `cd tools && python3 -m unittest test_module_graph`)."""

import contextlib
import io
import os
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import module_graph  # noqa: E402


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(textwrap.dedent(text))


class ModuleGraphTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        self.addCleanup(self.tmp.cleanup)

    def run_checker(self, *args):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = module_graph.main(["--root", self.root, *args])
        return code, out.getvalue()

    def edges(self, crate):
        src = os.path.join(self.root, "crates", crate, "src")
        scanned = module_graph.scan_crate(crate, src, f"crates/{crate}/src")
        return set(module_graph.edges_of(scanned))

    def test_cycle_through_a_use_group_is_reported_with_locations(self):
        write(self.root, "crates/demo/src/lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub mod d;\n")
        # a -> b and a -> d through one nested use group
        write(
            self.root,
            "crates/demo/src/a.rs",
            """\
            use crate::{b::{X, Y}, d::Z};
            pub struct A;
            """,
        )
        write(self.root, "crates/demo/src/b.rs", "pub struct X;\npub struct Y;\npub fn f() -> crate::c::C { todo!() }\n")
        # c/ is a folder module: its child closes the cycle with super::super
        write(self.root, "crates/demo/src/c/mod.rs", "mod inner;\npub use inner::C;\n")
        write(self.root, "crates/demo/src/c/inner.rs", "pub struct C(pub super::super::a::A);\n")
        write(self.root, "crates/demo/src/d.rs", "pub struct Z;\n")

        self.assertEqual(
            self.edges("demo"),
            {("a", "b"), ("a", "d"), ("b", "c"), ("c", "a")},
        )
        code, out = self.run_checker()
        self.assertEqual(code, 1)
        self.assertIn("import cycle among {a, b, c}", out)
        self.assertIn("a -> b -> c -> a", out)
        self.assertIn("crates/demo/src/a.rs:1", out)
        self.assertIn("crates/demo/src/c/inner.rs:1", out)
        self.assertNotIn("d}", out)

    def test_comments_strings_and_tests_make_no_edges(self):
        write(self.root, "crates/demo/src/main.rs", "mod a;\nmod b;\nmod t;\n")
        write(
            self.root,
            "crates/demo/src/a.rs",
            """\
            // use crate::b::X;
            /* crate::b::X /* nested */ crate::b::Y */
            const S: &str = "crate::b::X";
            const R: &str = r#"crate::b::"X"#;
            const C: char = '"';
            fn f<'a>(x: &'a str) -> &'a str { x }
            use crate::t::T;
            #[cfg(test)]
            mod tests {
                use super::*;
                use crate::b::X;
            }
            """,
        )
        write(self.root, "crates/demo/src/b.rs", "use crate::a::f;\n#[cfg(test)]\nmod tests;\n")
        write(self.root, "crates/demo/src/b/tests.rs", "use crate::a::f;\nuse crate::t::T;\n")
        write(self.root, "crates/demo/src/t.rs", "pub struct T;\n")
        self.assertEqual(self.edges("demo"), {("a", "t"), ("b", "a")})
        code, out = self.run_checker("--list")
        self.assertEqual(code, 0, out)
        self.assertIn("a -> t", out)
        self.assertIn("b -> t    (tests only)", out)

    def test_super_from_a_top_level_file_and_long_files(self):
        write(self.root, "crates/demo/src/lib.rs", "mod a;\nmod b;\n")
        write(self.root, "crates/demo/src/a.rs", "fn g() { super::b::h() }\n" + "\n" * 801)
        write(self.root, "crates/demo/src/b.rs", "pub fn h() {}\n")
        write(self.root, "crates/demo/src/b/tests.rs", "\n" * 900)
        write(self.root, "crates/demo/src/b/tests/more.rs", "\n" * 900)
        self.assertEqual(self.edges("demo"), {("a", "b")})
        code, out = self.run_checker()
        self.assertEqual(code, 1)
        self.assertIn("crates/demo/src/a.rs has 802 lines", out)
        self.assertNotIn("b/tests", out)




class ReadmeTableTest(unittest.TestCase):
    def test_a_missing_module_a_missing_row_and_a_stale_row_are_reported(self):
        readme = textwrap.dedent(
            """\
            | crate | holds |
            |---|---|
            | `crates/a` | `x` (the x), `y/` (the ys) |
            | `crates/gone` | `z` |
            """
        )
        problems = module_graph.readme_problems(readme, [("a", {"x", "y", "w"}), ("b", {"q"})])
        self.assertEqual(
            problems,
            [
                "README layout table: crates/a does not name its module `w`",
                "README layout table has no row for crates/b",
                "README layout table names crates/gone, which does not exist",
            ],
        )
        self.assertEqual(module_graph.readme_problems(readme, [("a", {"x", "y"}), ("gone", {"z"})]), [])


if __name__ == "__main__":
    unittest.main()
