// MathJax 3 for the whole site (loaded before the MathJax script in mkdocs.yml extra_javascript;
// MathJax itself is vendored in javascripts/mathjax/, so the site typesets with no network).
//
// Three sources of formulas, and nothing else is searched:
// * Markdown pages and docstrings: pymdownx.arithmatex (generic) wraps each formula in an element
//   of class "arithmatex", with \( \) or \[ \] delimiters.
// * Notebook pages: nbconvert leaves Jupyter's $ and $$ in Markdown cells (class
//   jp-RenderedMarkdown, whose formulas sit in nested <p>, <li>, ... elements) and in LaTeX
//   outputs (class jp-RenderedLatex).
// * The navigation: the table of contents repeats a heading's text, so a heading with math
//   ("The fan-out of \(u\)", "How small should $\varepsilon$ be?") leaves its delimiters in the
//   link's text (class md-nav__link), without an arithmatex element around them.
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
    processHtmlClass: "arithmatex|jp-RenderedMarkdown|jp-RenderedLatex|md-nav__link"
  }
};

// Material's document$ emits once per page (and again per page with navigation.instant, which
// swaps the content without reloading). Typeset what is new after MathJax's own first typeset,
// chained on its promise so that whoever waits on MathJax.startup.promise sees the page finished.
// Never MathJax.startup.output.clearCache() here: it drops the CSS of every glyph already on the
// page, which leaves typeset formulas as blank space (the CDN's later arrival used to hide that).
document$.subscribe(() => {
  MathJax.startup.promise = MathJax.startup.promise.then(() => {
    MathJax.typesetClear();
    MathJax.texReset();
    return MathJax.typesetPromise();
  });
});
