/* explorer.js — index.html's routing explorer (reports/sections/explorer.h writes its data,
 * docs/explorer.md describes what it shows). Plain script, no library, nothing fetched: it
 * reads the JSON in <script id="rsx-data"> and draws into <div id="rsx-app">.
 *
 * A "case" is one example image under one run. The page shows view 0 and one other view
 * (the View choice) of one MoE block (the Block choice) as grids of patches coloured by
 * their top-1 expert, as the report's grid figures are. Pointing at a patch (mouse over,
 * tap, or keyboard focus) selects it; its counterparts in every view are found through
 * view 0, the correspondence the store records: a patch of view v matches view-0 patch
 * match[v][j] (-1: none), and a patch of view w is a counterpart when it matches the same
 * view-0 patch. The table under the grids lists, for the selected patch and every
 * counterpart, the recorded top experts and their router probabilities. */
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('rsx-data').textContent);
  var app = document.getElementById('rsx-app');
  var st = {c: 0, layer: 0, view: 1, sel: null};   /* sel: {v, j} */
  var refs = {};                                   /* the elements redrawn on a change */

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function kase() { return data.cases[st.c]; }
  function run() { return data.runs[kase().run]; }

  function images() {
    var out = [];
    data.cases.forEach(function (k) { if (out.indexOf(k.image) < 0) out.push(k.image); });
    return out;
  }

  function option(sel, value, text, chosen) {
    var o = el('option', null, text);
    o.value = value;
    if (chosen) o.selected = true;
    sel.appendChild(o);
  }

  function control(label, id) {
    var l = el('label', 'rsx-ctl', label + ' ');
    var s = el('select');
    s.id = id;
    l.appendChild(s);
    return l;
  }

  /* The patches of each view that correspond to patch J of view V: {w: [patch, ...]}, and
   * the view-0 patch they share (-1: J has no match in view 0). */
  function counterparts(v, j) {
    var k = kase(), views = k.match.length, m = v === 0 ? j : k.match[v][j], out = [];
    for (var w = 0; w < views; w++) {
      var list = [];
      if (w === v) list.push(j);
      else if (m >= 0) {
        if (w === 0) list.push(m);
        else k.match[w].forEach(function (x, p) { if (x === m) list.push(p); });
      }
      out.push(list);
    }
    return {ref: m, views: out};
  }

  function rowcol(j) {
    var gw = run().grid_w;
    return '(' + Math.floor(j / gw) + ', ' + (j % gw) + ')';
  }

  function viewName(w) {
    return 'view ' + w + ': ' + run().views[w];
  }

  function fillControls() {
    var imgs = images(), k = kase(), r = run();
    refs.image.textContent = '';
    imgs.forEach(function (i) {
      var lab = data.cases.filter(function (x) { return x.image === i; })[0].label;
      option(refs.image, i, 'image ' + i + ' (' + lab + ')', i === k.image);
    });
    refs.run.textContent = '';
    data.cases.forEach(function (x, c) {
      if (x.image === k.image) option(refs.run, c, data.runs[x.run].short + ', ' + data.runs[x.run].protocol, c === st.c);
    });
    refs.layer.textContent = '';
    r.blocks.forEach(function (b, l) { option(refs.layer, l, 'block ' + b, l === st.layer); });
    refs.view.textContent = '';
    for (var w = 1; w < r.views.length; w++) option(refs.view, w, viewName(w), w === st.view);
    refs.view.parentNode.style.display = r.views.length > 1 ? '' : 'none';
  }

  function drawPixels(canvas, px, w) {
    var n = px.h * px.w, bytes = atob(px.views[w]);
    canvas.width = px.w;
    canvas.height = px.h;
    var ctx = canvas.getContext('2d'), img = ctx.createImageData(px.w, px.h);
    for (var i = 0; i < n; i++) {
      for (var ch = 0; ch < 3; ch++)
        img.data[4 * i + ch] = bytes.charCodeAt((px.c === 1 ? 0 : ch) * n + i);
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  function panel(w) {
    var k = kase(), r = run(), R = r.record_k, np = r.grid_h * r.grid_w;
    var p = el('div', 'rsx-panel');
    p.setAttribute('data-view', w);
    p.appendChild(el('div', 'rsx-vhead', viewName(w)));
    var pr = k.predicted[w];
    p.appendChild(el('div', 'rsx-pred', 'predicted ' + pr.class + ' (' + pr.prob.toFixed(3) + ')'));
    if (k.pixels) {
      var th = el('div', 'rsx-thumb');
      var cv = el('canvas');
      th.appendChild(cv);
      drawPixels(cv, k.pixels, w);
      if (r.attacked[w]) p.appendChild(el('div', 'rsx-note', data.start_pixels));
      p.appendChild(th);
    }
    var g = el('div', 'rsx-grid');
    g.style.gridTemplateColumns = 'repeat(' + r.grid_w + ', 1fr)';
    for (var j = 0; j < np; j++) {
      var e = k.top[w][st.layer][j * R];
      var c = el('div', 'rsx-cell', String(e));
      c.style.backgroundColor = r.colors[e];
      c.style.color = r.ink[e];
      c.tabIndex = 0;
      c.setAttribute('data-view', w);
      c.setAttribute('data-patch', j);
      if (k.match[w][j] < 0) c.classList.add('rsx-nomatch');
      if (k.changed[w][st.layer][j] === 1) c.classList.add('rsx-changed');
      c.title = 'view ' + w + ', patch ' + rowcol(j) + ': top-1 expert ' + e;
      g.appendChild(c);
    }
    p.appendChild(g);
    return p;
  }

  function drawPanels() {
    var r = run();
    refs.caption.textContent = r.label + '; image ' + kase().image + ' (label ' + kase().label + '), block ' +
      r.blocks[st.layer] + '. Cells: top-1 expert; red border: another expert than the matched patch of view 0; ' +
      'hatched: no match in view 0.';
    refs.panels.textContent = '';
    refs.panels.appendChild(panel(0));
    if (r.views.length > 1) refs.panels.appendChild(panel(st.view));
  }

  /* The selected patch and its counterparts: outlined in the grids, boxed on the images. */
  function mark(cp) {
    var r = run();
    Array.prototype.forEach.call(refs.panels.querySelectorAll('.rsx-panel'), function (p) {
      var w = +p.getAttribute('data-view'), list = cp ? cp.views[w] : [];
      Array.prototype.forEach.call(p.querySelectorAll('.rsx-cell'), function (c) {
        var j = +c.getAttribute('data-patch'), on = list.indexOf(j) >= 0;
        var sel = on && st.sel.v === w;
        c.classList.toggle('rsx-sel', sel);
        c.classList.toggle('rsx-hit', on && !sel);
      });
      var th = p.querySelector('.rsx-thumb');
      if (!th) return;
      Array.prototype.forEach.call(th.querySelectorAll('.rsx-mark'), function (m) { th.removeChild(m); });
      list.forEach(function (j) {
        var m = el('div', 'rsx-mark' + (st.sel.v === w ? ' rsx-sel' : ''));
        m.style.left = 100 * (j % r.grid_w) / r.grid_w + '%';
        m.style.top = 100 * Math.floor(j / r.grid_w) / r.grid_h + '%';
        m.style.width = 100 / r.grid_w + '%';
        m.style.height = 100 / r.grid_h + '%';
        th.appendChild(m);
      });
    });
  }

  function expertCell(r, k, w, j, rank) {
    var R = r.record_k, e = k.top[w][st.layer][j * R + rank], g = k.gate[w][st.layer][j * R + rank];
    var td = el('td', 'rsx-exp' + (rank >= r.k ? ' rsx-beyond' : ''));
    var sw = el('span', 'rsx-swatch');
    sw.style.backgroundColor = r.colors[e];
    td.appendChild(sw);
    td.appendChild(document.createTextNode('expert ' + e + ' '));
    td.appendChild(el('span', 'rsx-prob', g.toFixed(3)));
    td.setAttribute('data-expert', e);
    td.setAttribute('data-prob', g.toFixed(3));
    if (rank >= r.k) td.title = 'rank ' + (rank + 1) + ' is beyond k = ' + r.k + ': recorded, not run';
    return td;
  }

  function detailRow(tbody, r, w, j, text) {
    var k = kase(), tr = el('tr', w === 0 || w === st.view ? 'rsx-shown' : null);
    tr.setAttribute('data-view', w);
    tr.setAttribute('data-patch', j === null ? -1 : j);
    tr.appendChild(el('td', 'rsx-view', viewName(w)));
    if (j === null) {
      var td = el('td', 'rsx-none', text);
      td.colSpan = 1 + r.record_k;
      tr.appendChild(td);
    } else {
      tr.appendChild(el('td', null, rowcol(j) + (w === st.sel.v ? ' (pointed at)' : '')));
      for (var q = 0; q < r.record_k; q++) tr.appendChild(expertCell(r, k, w, j, q));
    }
    tbody.appendChild(tr);
  }

  function drawDetail() {
    var r = run();
    refs.detail.textContent = '';
    if (!st.sel) {
      refs.detail.appendChild(el('p', 'rsx-hint', 'Point at a patch or tap it.'));
      return;
    }
    var v = st.sel.v, j = st.sel.j, cp = counterparts(v, j);
    mark(cp);
    var head = 'Patch ' + rowcol(j) + ' of view ' + v + ', block ' + r.blocks[st.layer] + ': ';
    head += cp.ref < 0 ? 'no match in view 0 (its centre lies outside view 0), so no counterpart in other views.'
                       : 'matched patch of view 0 ' + rowcol(cp.ref) + '; rows: every view\'s patches matched to it.';
    var h = el('p', 'rsx-dhead', head);
    refs.detail.appendChild(h);
    var tbl = el('table', 'rsx-table'), thead = el('tr');
    ['View', 'Patch (row, col)'].forEach(function (t) { thead.appendChild(el('th', null, t)); });
    for (var q = 0; q < r.record_k; q++)
      thead.appendChild(el('th', null, 'rank ' + (q + 1) + (q >= r.k ? ' (not run)' : '') + ': expert, router probability'));
    tbl.appendChild(thead);
    var tbody = el('tbody');
    cp.views.forEach(function (list, w) {
      if (list.length === 0)
        detailRow(tbody, r, w, null, cp.ref < 0 ? '\u2014' : 'no patch of this view matches view 0\'s patch ' + rowcol(cp.ref));
      list.forEach(function (p) { detailRow(tbody, r, w, p); });
    });
    tbl.appendChild(tbody);
    var box = el('div', 'rsx-scroll');
    box.appendChild(tbl);
    refs.detail.appendChild(box);
  }

  function select(v, j) {
    st.sel = {v: v, j: j};
    drawDetail();
  }

  function redraw() {
    var r = run();
    if (st.layer >= r.blocks.length) st.layer = 0;
    if (st.view >= r.views.length) st.view = 1;
    if (st.sel && (st.sel.v >= r.views.length || st.sel.j >= r.grid_h * r.grid_w)) st.sel = null;
    fillControls();
    drawPanels();
    drawDetail();
  }

  function onPoint(ev) {
    var c = ev.target.closest ? ev.target.closest('.rsx-cell') : null;
    if (c) select(+c.getAttribute('data-view'), +c.getAttribute('data-patch'));
  }

  function build() {
    app.textContent = '';
    if (!data.cases.length) return;
    var ctl = el('div', 'rsx-controls');
    [['Image', 'rsx-image'], ['Run', 'rsx-run'], ['Block', 'rsx-layer'], ['View', 'rsx-view']].forEach(function (x) {
      var l = control(x[0], x[1]);
      ctl.appendChild(l);
      refs[x[1].slice(4)] = l.querySelector('select');
    });
    refs.caption = el('p', 'rsx-caption');
    refs.panels = el('div', 'rsx-panels');
    refs.detail = el('div', 'rsx-detail');
    refs.detail.setAttribute('aria-live', 'polite');
    [ctl, refs.caption, refs.panels, refs.detail].forEach(function (e) { app.appendChild(e); });
    refs.image.addEventListener('change', function () {
      var i = +refs.image.value, cur = run().id;
      var same = -1, first = -1;
      data.cases.forEach(function (k, c) {
        if (k.image !== i) return;
        if (first < 0) first = c;
        if (data.runs[k.run].id === cur) same = c;
      });
      st.c = same >= 0 ? same : first;
      redraw();
    });
    refs.run.addEventListener('change', function () { st.c = +refs.run.value; redraw(); });
    refs.layer.addEventListener('change', function () { st.layer = +refs.layer.value; redraw(); });
    refs.view.addEventListener('change', function () { st.view = +refs.view.value; redraw(); });
    refs.panels.addEventListener('mouseover', onPoint);
    refs.panels.addEventListener('click', onPoint);
    refs.panels.addEventListener('focusin', onPoint);
    var r = run();
    st.sel = {v: 0, j: Math.floor(r.grid_h / 2) * r.grid_w + Math.floor(r.grid_w / 2)};
    redraw();
  }

  build();
})();
