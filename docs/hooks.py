"""MkDocs hooks: formulas written $...$ (inline) and $$...$$ (display) become MathML when the site is
built (latex2mathml), so the pages show typeset mathematics with no script and no network (a display
wider than the text column scrolls inside it); code spans
and blocks are left alone, and "_" is a subscript in these pages, never emphasis.  Doctest blocks are
shown without their prompts, the expected output as comments, so an example pastes into Python as it
is.  Used by mkdocs.yml; the Markdown files themselves stay plain and doctested."""
import re

SCROLLS = "overflow-x: auto; overflow-y: hidden; padding: 0.3em 0"      # a wide display scrolls in the column
DISPLAY = re.compile(r"^\$\$\s*\n(.+?)\n\$\$\s*$", re.S | re.M)
INLINE = r"(?<![\\$\w])\$(?![\s$])(.+?)(?<![\s\\])\$(?![\w$])"


def _math_extension():
    """The Python-Markdown extension (imported here: the test suite reads this file without MkDocs)."""
    from latex2mathml.converter import convert
    from markdown.extensions import Extension
    from markdown.inlinepatterns import InlineProcessor
    from markdown.preprocessors import Preprocessor

    def mathml(tex, display):
        return convert(tex.strip(), display="block" if display else "inline")

    class Display(Preprocessor):
        def run(self, lines):
            out, fenced = [], False
            for block in re.split(r"(^```.*$)", "\n".join(lines), flags=re.M):
                if block.startswith("```"):
                    fenced = not fenced
                    out.append(block)
                elif fenced:
                    out.append(block)
                else:
                    out.append(DISPLAY.sub(lambda m: "\n" + self.md.htmlStash.store(
                        f'<div class="math-display" style="{SCROLLS}">{mathml(m.group(1), True)}</div>') + "\n", block))
            return "".join(out).split("\n")

    class Inline(InlineProcessor):
        def handleMatch(self, m, data):
            return self.md.htmlStash.store(mathml(m.group(1), False)), m.start(0), m.end(0)

    class MathML(Extension):
        def extendMarkdown(self, md):
            md.preprocessors.register(Display(md), "rws_display_math", 27)
            md.inlinePatterns.register(Inline(INLINE, md), "rws_inline_math", 185)
            delimiters = getattr(md, "delimiters", None)     # "_" is a subscript in these pages (q_φ, E_{p}),
            if delimiters is not None and "_" in getattr(delimiters, "tokens", ()):   # never emphasis: *x* is
                delimiters.remove("_")
    return MathML()


DOCTEST = re.compile(r"^```python\n(>>> .*?)^```", re.S | re.M)


def pasteable(match):
    """A doctest block as code that pastes: prompts removed, the expected output kept as comments."""
    lines = []
    for line in match.group(1).splitlines():
        if line.startswith((">>> ", "... ")):
            lines.append(line[4:])
        elif line in (">>>", "..."):
            lines.append("")
        elif line.strip():
            lines.append(f"# → {line}")
    return "```python\n" + "\n".join(lines).rstrip() + "\n```"


def on_page_markdown(markdown, **kwargs):
    """The pages' doctest blocks (the test suite runs them as written) become code that pastes."""
    return DOCTEST.sub(pasteable, markdown)


def on_config(config):
    config.markdown_extensions.append(_math_extension())
    return config
