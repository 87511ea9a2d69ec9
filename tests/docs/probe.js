// What one page of the site shows its reader, evaluated in the page by tests/docs/test_browser.py
// once the page has loaded. Returns plain data; the test decides what is wrong.
(async () => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const started = () => Boolean(window.MathJax && MathJax.startup && MathJax.startup.promise);
  for (let i = 0; i < 400 && !started(); i++) await sleep(25);  // up to 10 s for MathJax to load
  const mathjax = started();
  await sleep(50);  // the site's document$ typeset chains itself on MathJax.startup.promise
  if (mathjax) await MathJax.startup.promise;
  document.body.getBoundingClientRect();  // lay out, so that the fonts in use start loading
  await document.fonts.ready;

  const images = [...document.images];
  for (const img of images) if (img.loading === "lazy") img.loading = "eager";
  const brokenImages = [];
  await Promise.all(images.map((img) => img.decode().catch(() => null).then(() => {
    if (!img.complete || img.naturalWidth === 0) brokenImages.push((img.currentSrc || img.src).slice(0, 120));
  })));

  // TeX left as text: delimiters, or a $...$ holding a command, _ or ^. Code is not prose (nor
  // the hidden copy of each notebook cell's source that its copy button uses).
  const SKIP = "pre, code, script, style, textarea, mjx-container, .clipboard-copy-txt";
  const RAW = /\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\n]*(?:\\[A-Za-z]+|[_^])[^$\n]*\$/g;
  const rawTex = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.parentElement || node.parentElement.closest(SKIP)) continue;
    for (const match of node.textContent.matchAll(RAW)) {
      const text = node.textContent.slice(Math.max(0, match.index - 40), match.index + 60);
      rawTex.push(text.replace(/\s+/g, " ").trim());
    }
  }

  const arithmatex = [...document.querySelectorAll(".arithmatex")];
  const count = (selector) => document.querySelectorAll(selector).length;
  return {
    mathjax,
    formulas: count("mjx-container"),
    arithmatex: arithmatex.length,
    untypeset: arithmatex.filter((el) => !el.querySelector("mjx-container"))
                         .map((el) => el.textContent.trim().slice(0, 80)),
    notebookFormulas: count(".jp-RenderedMarkdown mjx-container, .jp-RenderedLatex mjx-container"),
    navFormulas: count(".md-nav__link mjx-container"),
    // CommonHTML draws each glyph as the ::before content of an mjx-c element, in a MathJax font
    blankGlyphs: [...document.querySelectorAll("mjx-c")].filter((el) => {
      const content = getComputedStyle(el, "::before").content;
      return (content === "none" || content === "normal") && !el.textContent;
    }).length,
    fontErrors: [...document.fonts].filter((font) => font.status === "error").map((font) => font.family),
    texErrors: [...document.querySelectorAll("mjx-merror")]
                 .map((el) => el.getAttribute("data-mjx-error") || el.textContent),
    rawTex,
    images: images.length,
    brokenImages,
    links: [...document.querySelectorAll("a[href]")].map((a) => a.href),
    ids: [...document.querySelectorAll("[id]")].map((el) => el.id)
           .concat([...document.querySelectorAll("a[name]")].map((a) => a.name)),
  };
})()
