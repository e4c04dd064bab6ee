//! Writing a scene as one HTML page: the SVG inline, a filter bar, a details pane, and a short
//! script. Nothing is fetched: the page works from a file, offline.
//!
//! The script also writes the page's rendered layout (bounding boxes of every lifeline, arrow
//! and drop mark) as JSON into `<pre id="pav-layout">`, so that a headless browser's dumped DOM
//! says what a person would see; `scenarios/tests/chart_render.rs` reads it.

use core::fmt::Write as _;

use super::layout::Scene;
use super::svg::{self, esc};

const STYLE: &str = "\
body{margin:0;font-family:system-ui,sans-serif;font-size:13px}
#pav-bar{position:sticky;top:0;background:#f6f8fb;border-bottom:1px solid #ccd;padding:6px 10px;z-index:1}
#pav-bar label{margin-right:10px}
#pav-bar input[type=number]{width:7em}
#pav-details{position:fixed;right:8px;bottom:8px;max-width:45%;max-height:40%;overflow:auto;\
background:#fffef4;border:1px solid #cc9;padding:6px;margin:0;font-size:11px;white-space:pre-wrap}
#pav-details:empty{display:none}
#pav-layout{display:none}
";

/// The filter, the hover details, and the layout report.
const SCRIPT: &str = r#"(function(){
"use strict";
var svg=document.querySelector("svg.pav-chart");
var details=document.getElementById("pav-details");
var from=document.getElementById("pav-from"), to=document.getElementById("pav-to");
function shown(host){var b=document.querySelector('#pav-hosts input[value="'+CSS.escape(host)+'"]');return !b||b.checked;}
function apply(){
  var f=from.value===""?-Infinity:parseFloat(from.value)*1000;
  var t=to.value===""?Infinity:parseFloat(to.value)*1000;
  svg.querySelectorAll(".lifeline").forEach(function(g){g.style.display=shown(g.dataset.host)?"":"none";});
  svg.querySelectorAll("[data-t]").forEach(function(g){
    var at=parseFloat(g.dataset.t);
    var ok=at>=f&&at<=t;
    ["host","from","to"].forEach(function(k){var h=g.dataset[k];if(h&&!shown(h))ok=false;});
    g.style.display=ok?"":"none";
  });
  report();
}
svg.addEventListener("mouseover",function(e){
  var g=e.target.closest(".arrow,.mark,.band,.lifeline");
  if(!g)return;
  var title=g.querySelector("title");
  details.textContent=title?title.textContent:"";
});
document.getElementById("pav-bar").addEventListener("input",apply);
function box(el){
  var r=el.getBoundingClientRect(), cs=getComputedStyle(el);
  return {x:r.left+window.scrollX,y:r.top+window.scrollY,w:r.width,h:r.height,
    visible:cs.display!=="none"&&cs.visibility!=="hidden"&&r.width+r.height>0};
}
function report(){
  var out={page:{w:document.documentElement.scrollWidth,h:document.documentElement.scrollHeight},
    lifelines:[],arrows:[],drops:[]};
  svg.querySelectorAll(".lifeline").forEach(function(g){
    var b=box(g);b.host=g.dataset.host;out.lifelines.push(b);});
  svg.querySelectorAll(".arrow").forEach(function(g){
    var t=g.querySelector(":scope>text");var b=t?box(t):box(g);
    b.label=g.dataset.label;b.outcome=g.dataset.outcome;b.text=t?t.textContent:"";out.arrows.push(b);});
  svg.querySelectorAll(".drop").forEach(function(g){
    var b=box(g);b.reason=g.dataset.reason;out.drops.push(b);});
  document.getElementById("pav-layout").textContent=JSON.stringify(out);
}
report();
})();
"#;

/// The scene as a complete HTML document.
pub(crate) fn write(scene: &Scene) -> String {
    let body = svg::write(scene);
    let mut s = String::with_capacity(body.len() + 8192);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n\
         <form id=\"pav-bar\" onsubmit=\"return false\"><b>{t}</b> &#8195;\
         <label>from <input id=\"pav-from\" type=\"number\" step=\"any\" min=\"0\"> ms</label>\
         <label>to <input id=\"pav-to\" type=\"number\" step=\"any\" min=\"0\"> ms</label>\
         <span id=\"pav-hosts\">",
        t = esc(&scene.title)
    );
    for lane in &scene.lanes {
        let _ = write!(
            s,
            "<label><input type=\"checkbox\" checked value=\"{n}\">{n}</label>",
            n = esc(&lane.name)
        );
    }
    s.push_str("</span></form>\n");
    s.push_str(&body);
    s.push_str("<pre id=\"pav-details\"></pre><pre id=\"pav-layout\"></pre>\n<script>");
    s.push_str(SCRIPT);
    s.push_str("</script></body></html>\n");
    s
}
