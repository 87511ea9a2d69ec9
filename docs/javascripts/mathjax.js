// MathJax 3 for the whole site (loaded before the MathJax script in mkdocs.yml extra_javascript).
//
// Two sources of formulas, and nothing else is searched:
// * Markdown pages and docstrings: pymdownx.arithmatex (generic) wraps each formula in an element
//   of class "arithmatex", with \( \) or \[ \] delimiters.
// * Notebook pages: nbconvert leaves Jupyter's $ and $$ in Markdown cells (class
//   jp-RenderedMarkdown, whose formulas sit in nested <p>, <li>, ... elements) and in LaTeX
//   outputs (class jp-RenderedLatex).
// MathJax skips the descendants of an element whose class matches ignoreHtmlClass, except those
// whose class matches processHtmlClass (and everything below those). Ignoring md-container (the
// page body) and processing only the classes above keeps a dollar sign in prose or in an output
// from being read as math; code and pre elements are skipped anyway.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: {
    ignoreHtmlClass: "md-container",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-RenderedLatex"
  }
};

document$.subscribe(() => {
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
