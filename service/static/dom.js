// What both pages build their DOM with; loaded before the page's own script.
"use strict";

// el("button", {class: "x", onclick: f}, "text"): attributes, listeners ("on…"), children.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}
