"""MkDocs hook: formulas written $...$ (inline) and $$...$$ (display) become MathML when the site is
built (latex2mathml), so the pages show typeset mathematics with no script and no network; code spans
and blocks are left alone.  Used by mkdocs.yml; the Markdown files themselves stay plain and doctested."""
import re

from latex2mathml.converter import convert
from markdown.extensions import Extension
from markdown.inlinepatterns import InlineProcessor
from markdown.preprocessors import Preprocessor

DISPLAY = re.compile(r"^\$\$\s*\n(.+?)\n\$\$\s*$", re.S | re.M)


def _mathml(tex, display):
    return convert(tex.strip(), display="block" if display else "inline")


class _Display(Preprocessor):
    def run(self, lines):
        text = "\n".join(lines)
        out, fenced = [], False
        for block in re.split(r"(^```.*$)", text, flags=re.M):
            if block.startswith("```"):
                fenced = not fenced
                out.append(block)
            elif fenced:
                out.append(block)
            else:
                out.append(DISPLAY.sub(lambda m: "\n" + self.md.htmlStash.store(
                    f'<div class="math-display">{_mathml(m.group(1), True)}</div>') + "\n", block))
        return "".join(out).split("\n")


class _Inline(InlineProcessor):
    def handleMatch(self, m, data):
        return self.md.htmlStash.store(_mathml(m.group(1), False)), m.start(0), m.end(0)


class MathML(Extension):
    def extendMarkdown(self, md):
        md.preprocessors.register(_Display(md), "rws_display_math", 27)
        md.inlinePatterns.register(_Inline(r"(?<![\\$\w])\$(?![\s$])(.+?)(?<![\s\\])\$(?![\w$])", md),
                                   "rws_inline_math", 185)


def on_config(config):
    config.markdown_extensions.append(MathML())
    return config
