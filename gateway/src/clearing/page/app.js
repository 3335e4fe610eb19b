// The clearing officers' page: one clearing day's report from
// GET /v1/clearing/{date}, the officer's close of the day, and the day's
// cross-region supervision signals from GET /v1/signals?date= (officers only).
// Plain JS, no dependencies. Amounts are never computed with here: they are
// shown from the JSON number's own text (only the chart's bar lengths are
// scaled from them).
'use strict';

(function () {
  var SVG = 'http://www.w3.org/2000/svg';

  var CLASS_NAMES = {
    only_in_gateway: ['网关有、地区无', 'only in the gateway'],
    only_in_region: ['地区有、网关无', 'only in the region'],
    amount_differs: ['金额不符', 'amounts differ'],
    state_differs: ['状态不符', 'states differ'],
    field_differs: ['字段不符', 'fields differ'],
    duplicate: ['重复', 'duplicate']
  };
  var STATE_NAMES = {
    settled: ['已结算', 'settled'],
    cancelled: ['已撤销', 'cancelled'],
    reversed: ['已冲正', 'reversed']
  };
  // The rows' fields, in display order: [key, 中文, English, is an amount].
  var ROW_FIELDS = [
    ['setl_id', '结算流水号', 'setl_id', false],
    ['msgid', '报文ID', 'msgid', false],
    ['omsgid', '原报文ID', 'omsgid', false],
    ['mdtrt_id', '就诊ID', 'mdtrt_id', false],
    ['fixmedins_code', '定点机构', 'institution', false],
    ['insuplc_admdvs', '参保地', 'insured region', false],
    ['mdtrtarea_admvs', '就医地', 'treatment region', false],
    ['insutype', '险种', 'insutype', false],
    ['med_type', '医疗类别', 'med_type', false],
    ['clr_type', '清算类别', 'clr_type', false],
    ['setl_time', '结算时间', 'settled at', false],
    ['medfee_sumamt', '医疗费总额（元）', 'total fees', true],
    ['fund_pay_sumamt', '基金支付（元）', 'fund pays', true],
    ['acct_pay', '个人账户支付（元）', 'account pays', true],
    ['psn_cash_pay', '现金支付（元）', 'cash', true],
    ['state', '状态', 'state', false]
  ];

  // The supervision rules (contracts/supervision.md), in the filter's order.
  var RULE_NAMES = {
    concurrent_inpatient: ['同时住院', 'concurrent_inpatient'],
    duplicate_bill: ['重复结算', 'duplicate_bill'],
    frequency: ['就诊频次', 'frequency'],
    pharmacy_quantity: ['药品超量', 'pharmacy_quantity'],
    institution_surge: ['机构结算激增', 'institution_surge']
  };
  var SEVERITY_NAMES = { high: ['高', 'high'], medium: ['中', 'medium'], low: ['低', 'low'] };
  // The pairs of regions whose joint checks get their own downloads.
  var SIGNAL_PAIRS = [['110000', '120000'], ['110000', '130000'], ['120000', '130000']];
  var REGION_NAMES = { '110000': '北京', '120000': '天津', '130000': '河北' };
  // A signal's fields, in the detail's order: [key, 中文, English].
  var SIGNAL_FIELDS = [
    ['id', '信号ID', 'id'],
    ['rule', '规则', 'rule'],
    ['severity', '严重程度', 'severity'],
    ['detected_at', '发现时间', 'detected at'],
    ['regions', '地区', 'regions'],
    ['institutions', '定点机构', 'institutions'],
    ['person_key', '人员标识（密钥哈希）', 'person key (keyed hash)'],
    ['mdtrt_ids', '就诊ID', 'mdtrt_ids'],
    ['setl_ids', '结算流水号', 'setl_ids'],
    ['amounts', '金额（元）', 'amounts'],
    ['detail', '说明', 'detail']
  ];

  var state = { date: null, report: null, selected: null, busy: false };
  // The signals of state.date: list is null until loaded; forbidden for a non-officer.
  var signals = { date: null, list: null, forbidden: false, selected: null, seq: 0 };

  function $(sel) { return document.querySelector(sel); }

  // ---- formatting -------------------------------------------------------

  // Today on the Asia/Shanghai clock, YYYY-MM-DD.
  function shanghaiToday() {
    try {
      var parts = new Intl.DateTimeFormat('en-CA', {
        timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit'
      }).formatToParts(new Date());
      var get = function (t) {
        for (var i = 0; i < parts.length; i++) { if (parts[i].type === t) { return parts[i].value; } }
        return '';
      };
      return get('year') + '-' + get('month') + '-' + get('day');
    } catch (e) {
      // UTC+8 has no daylight saving time.
      return new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);
    }
  }

  function validDate(text) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(text || '')) { return false; }
    var d = new Date(text + 'T00:00:00Z');
    return !isNaN(d.getTime()) && d.toISOString().slice(0, 10) === text;
  }

  // An amount as text: the JSON number's own digits (kept as a string by
  // parseReport where the browser allows), with thousands separators and
  // exactly two decimals, padded textually.
  function money(value) {
    if (value === null || value === undefined || value === '') { return '—'; }
    var s = typeof value === 'string' ? value.trim() : String(value);
    if (/[eE]/.test(s)) {
      // Only a number too large or too small for plain notation gets here.
      var n = Number(s);
      if (!isFinite(n)) { return s; }
      s = n.toFixed(2);
    }
    var m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(s);
    if (!m) { return s; }
    var sign = m[1];
    var whole = m[2].replace(/^0+(?=\d)/, '') || '0';
    var frac = (m[3] || '');
    frac = frac.length >= 2 ? frac.slice(0, 2) + frac.slice(2).replace(/0+$/, '') : (frac + '00').slice(0, 2);
    var grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    if (sign && /^[0,]*$/.test(grouped) && /^0*$/.test(frac)) { sign = ''; }
    return sign + grouped + '.' + frac;
  }

  function isNegative(value) {
    var s = typeof value === 'string' ? value.trim() : String(value);
    return s.charAt(0) === '-' && /[1-9]/.test(s);
  }

  function isZero(value) {
    var s = typeof value === 'string' ? value : String(value);
    return !/[1-9]/.test(s.replace(/[eE].*$/, ''));
  }

  function text(value) {
    return value === null || value === undefined || value === '' ? '—' : String(value);
  }

  // Parses the report keeping every non-integer number's source text (the
  // amounts), so 1234.50 stays "1234.50" and large amounts keep every digit.
  function parseReport(body) {
    try {
      return JSON.parse(body, function (key, value, context) {
        if (typeof value === 'number' && context && typeof context.source === 'string' &&
            /[.eE]/.test(context.source)) {
          return context.source;
        }
        return value;
      });
    } catch (e) {
      throw new Error('报告不是有效的 JSON / the report is not valid JSON: ' + e.message);
    }
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === 'class') { node.className = attrs[k]; }
        else if (k === 'text') { node.textContent = attrs[k]; }
        else { node.setAttribute(k, attrs[k]); }
      });
    }
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return node;
  }

  // "中文 English" with the English in small print.
  function bilingual(zh, en) {
    var span = el('span', null, [zh + ' ']);
    span.appendChild(el('small', { text: en }));
    return span;
  }

  function td(content, cls) {
    var cell = el('td', cls ? { class: cls } : null);
    if (content instanceof Node) { cell.appendChild(content); } else { cell.textContent = content; }
    return cell;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function regionName(code) {
    var r = state.report;
    var list = (r && r.positions) || [];
    for (var i = 0; i < list.length; i++) {
      if (list[i].admdvs === code) { return list[i].name || ''; }
    }
    var st = (r && r.sources && r.sources.statements) || [];
    for (var j = 0; j < st.length; j++) {
      if (st[j].admdvs === code) { return st[j].name || ''; }
    }
    return '';
  }

  function region(code) {
    var name = regionName(code);
    return name ? code + ' ' + name : text(code);
  }

  // ---- messages ------------------------------------------------------------

  function showError(message) {
    var banner = $('#error');
    banner.textContent = message;
    banner.hidden = false;
  }

  function hideError() {
    var banner = $('#error');
    banner.textContent = '';
    banner.hidden = true;
  }

  // The error text of a failed response: the JSON's err_msg or error, else the body.
  function errorText(status, body) {
    var detail = '';
    try {
      var json = JSON.parse(body);
      if (json && typeof json === 'object') {
        detail = json.err_msg || json.error || json.message || '';
        if (detail && typeof detail === 'object') { detail = detail.message || JSON.stringify(detail); }
      }
    } catch (e) { /* not JSON */ }
    if (!detail) { detail = (body || '').trim().slice(0, 300); }
    return 'HTTP ' + status + (detail ? ': ' + detail : '');
  }

  // ---- loading ---------------------------------------------------------------

  function reportUrl(date) { return '/v1/clearing/' + encodeURIComponent(date); }

  function setDownloads(date) {
    ['json', 'csv', 'xlsx'].forEach(function (f) {
      var a = $('#download-' + f);
      a.href = reportUrl(date) + '?format=' + f;
      a.setAttribute('download', 'clearing-' + date + '.' + f);
    });
  }

  // keepError: leave the error banner up (after a failed close, the reload must not hide why).
  function load(keepError) {
    var date = state.date;
    $('#loading').hidden = false;
    var statusNode = $('#status');
    if (!state.report) {
      statusNode.setAttribute('data-status', 'loading');
    }
    return fetch(reportUrl(date), { headers: { Accept: 'application/json' }, cache: 'no-store', credentials: 'same-origin' })
      .then(function (response) {
        return response.text().then(function (body) {
          if (!response.ok) { throw new Error(errorText(response.status, body)); }
          return parseReport(body);
        });
      })
      .then(function (report) {
        if (date !== state.date) { return; }
        if (!keepError) { hideError(); }
        state.report = report;
        render();
      })
      .catch(function (e) {
        if (date !== state.date) { return; }
        state.report = null;
        statusNode.setAttribute('data-status', 'error');
        statusNode.textContent = '无法加载报告 / could not load the report';
        $('#close-button').hidden = true;
        $('#close-panel').hidden = true;
        showError('加载失败 / Loading failed — ' + e.message);
      })
      .then(function () { $('#loading').hidden = true; });
  }

  function closeDay() {
    if (state.busy) { return; }
    state.busy = true;
    var date = state.date;
    var confirmButton = $('#close-confirm');
    confirmButton.disabled = true;
    fetch(reportUrl(date) + '/close', { method: 'POST', body: '', cache: 'no-store', credentials: 'same-origin' })
      .then(function (response) {
        return response.text().then(function (body) {
          if (response.status !== 200) { throw new Error(errorText(response.status, body)); }
          var answer = JSON.parse(body);
          if (!answer || answer.status !== 'closed') {
            throw new Error('unexpected answer: ' + body.slice(0, 300));
          }
          return answer;
        });
      })
      .then(function (answer) {
        hideError();
        $('#close-panel').hidden = true;
        if (state.report && date === state.date) {
          state.report.status = 'closed';
          state.report.closed = answer.closed || null;
          render();
        }
        // The report as the gateway now has it.
        return load();
      })
      .catch(function (e) {
        $('#close-panel').hidden = true;
        showError('关账失败 / Closing failed — ' + e.message);
        return load(true);
      })
      .then(function () {
        state.busy = false;
        confirmButton.disabled = false;
      });
  }

  // ---- rendering ------------------------------------------------------------

  function render() {
    var r = state.report;
    renderViewer(r.viewer);
    renderStatus(r);
    renderSources(r.sources || {});
    renderPositions(r.positions || []);
    renderPairs(r.clearing || []);
    renderBilateral(r.bilateral || []);
    renderTotals(r.totals || []);
    renderCounts(r.discrepancy_counts || {});
    renderDiscrepancies(r);
    renderDisputes(r.disputes || []);
  }

  function renderViewer(viewer) {
    var node = $('#viewer');
    clear(node);
    if (!viewer) { return; }
    var role = viewer.role === 'officer' ? ['清算经办', 'officer']
      : viewer.role === 'platform' ? ['地区平台', 'platform'] : [text(viewer.role), ''];
    node.appendChild(document.createTextNode('当前用户 '));
    node.appendChild(el('small', { text: 'Signed in as' }));
    node.appendChild(document.createTextNode(' ' + text(viewer.institution) + ' · '));
    node.appendChild(bilingual(role[0], role[1]));
    node.setAttribute('data-role', viewer.role || '');
  }

  function renderStatus(r) {
    var node = $('#status');
    clear(node);
    var closed = r.status === 'closed';
    node.setAttribute('data-status', closed ? 'closed' : 'open');
    node.className = closed ? 'status closed' : 'status open';
    var head = el('div', { class: 'status-head' });
    head.appendChild(el('span', { class: 'day', text: text(r.date) }));
    head.appendChild(closed ? bilingual('已关账', 'closed') : bilingual('未关账', 'open'));
    head.appendChild(r.matched
      ? el('span', { class: 'pill ok' }, [bilingual('全部相符', 'all matched')])
      : el('span', { class: 'pill bad' }, [bilingual('存在差异或缺对账单', 'discrepancies or missing statements')]));
    node.appendChild(head);
    if (closed && r.closed) {
      var dl = el('dl', { class: 'closure' });
      [['关账人', 'by', r.closed.by, 'closed-by'], ['关账时间', 'at', r.closed.at, 'closed-at'],
       ['摘要', 'SHA-256 digest', r.closed.digest, 'closed-digest']].forEach(function (f) {
        dl.appendChild(el('dt', null, [bilingual(f[0], f[1])]));
        dl.appendChild(el('dd', { id: f[3], class: f[3] === 'closed-digest' ? 'mono' : '', text: text(f[2]) }));
      });
      node.appendChild(dl);
    }
    var viewer = r.viewer || {};
    var canClose = viewer.role === 'officer' && r.status === 'open';
    $('#close-button').hidden = !canClose;
    if (!canClose) { $('#close-panel').hidden = true; }
    setDownloads(state.date);
  }

  function renderSources(sources) {
    $('#gateway-rows').textContent = text(sources.gateway_rows);
    $('#late').hidden = !sources.late_rows;
    $('#late-rows').textContent = text(sources.late_rows);
    $('#late-matched').textContent = text(sources.late_matched);
    var body = $('#sources tbody');
    clear(body);
    var rows = [];
    (sources.statements || []).forEach(function (s) {
      rows.push({ admdvs: s.admdvs, name: s.name, rows: s.rows, missing: false });
    });
    (sources.missing_statements || []).forEach(function (code) {
      rows.push({ admdvs: code, name: regionName(code), rows: null, missing: true });
    });
    rows.sort(function (a, b) { return a.admdvs < b.admdvs ? -1 : a.admdvs > b.admdvs ? 1 : 0; });
    rows.forEach(function (s) {
      var tr = el('tr', { 'data-admdvs': s.admdvs, class: s.missing ? 'missing' : '' });
      tr.appendChild(td(s.admdvs + (s.name ? ' ' + s.name : '')));
      tr.appendChild(td(s.missing ? bilingual('未收到', 'missing') : bilingual('已收到', 'received'),
        s.missing ? 'bad' : 'ok'));
      tr.appendChild(td(s.missing ? '—' : text(s.rows), 'num'));
      body.appendChild(tr);
    });
  }

  function renderPositions(positions) {
    var body = $('#positions tbody');
    clear(body);
    positions.forEach(function (p) {
      var tr = el('tr', { 'data-admdvs': p.admdvs });
      tr.appendChild(td(text(p.admdvs)));
      tr.appendChild(td(text(p.name)));
      tr.appendChild(td(money(p.receives), 'num'));
      tr.appendChild(td(money(p.pays), 'num'));
      tr.appendChild(td(money(p.net), 'num ' + (isZero(p.net) ? '' : isNegative(p.net) ? 'pay' : 'receive')));
      body.appendChild(tr);
    });
    drawChart(positions);
  }

  // A horizontal bar chart of net positions: right and green for a region
  // that receives, left and red for one that pays.
  function drawChart(positions) {
    var svg = $('#positions-chart');
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var width = 720, rowHeight = 34, top = 28, labelWidth = 150, pad = 16;
    var height = top + Math.max(positions.length, 1) * rowHeight + 12;
    svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    svg.setAttribute('width', '100%');
    svg.setAttribute('preserveAspectRatio', 'xMinYMin meet');
    var plotLeft = labelWidth + pad, plotRight = width - pad;
    var axis = (plotLeft + plotRight) / 2, half = (plotRight - plotLeft) / 2 - 4;
    function svgEl(tag, attrs, content) {
      var node = document.createElementNS(SVG, tag);
      Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
      if (content !== undefined) { node.textContent = content; }
      svg.appendChild(node);
      return node;
    }
    svgEl('text', { x: axis - 6, y: 16, 'text-anchor': 'end', class: 'legend pay' }, '← 应付 pays');
    svgEl('text', { x: axis + 6, y: 16, 'text-anchor': 'start', class: 'legend receive' }, '应收 receives →');
    if (!positions.length) {
      svgEl('text', { x: axis, y: top + 20, 'text-anchor': 'middle', class: 'empty' }, '无数据 no data');
    }
    // Bar lengths only: scaled, never shown as amounts.
    var max = 0;
    positions.forEach(function (p) { max = Math.max(max, Math.abs(Number(p.net)) || 0); });
    positions.forEach(function (p, i) {
      var y = top + i * rowHeight;
      var value = Number(p.net) || 0;
      var length = max > 0 ? Math.max(Math.abs(value) / max * (half * 0.62), value === 0 ? 0 : 2) : 0;
      var negative = isNegative(p.net);
      var zero = isZero(p.net);
      var x = negative ? axis - length : axis;
      var g = document.createElementNS(SVG, 'g');
      g.setAttribute('class', 'bar ' + (zero ? 'zero' : negative ? 'pay' : 'receive'));
      g.setAttribute('data-admdvs', p.admdvs);
      svg.appendChild(g);
      var label = document.createElementNS(SVG, 'text');
      label.setAttribute('x', labelWidth);
      label.setAttribute('y', y + rowHeight / 2 + 4);
      label.setAttribute('text-anchor', 'end');
      label.setAttribute('class', 'region-label');
      label.textContent = (p.name ? p.name + ' ' : '') + p.admdvs;
      g.appendChild(label);
      var rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('x', x.toFixed(1));
      rect.setAttribute('y', y + 6);
      rect.setAttribute('width', length.toFixed(1));
      rect.setAttribute('height', rowHeight - 12);
      rect.setAttribute('rx', 2);
      g.appendChild(rect);
      var title = document.createElementNS(SVG, 'title');
      title.textContent = (p.name || p.admdvs) + ' 净额 net ' + money(p.net);
      rect.appendChild(title);
      var amount = document.createElementNS(SVG, 'text');
      amount.setAttribute('x', negative ? x - 6 : x + length + 6);
      amount.setAttribute('y', y + rowHeight / 2 + 4);
      amount.setAttribute('text-anchor', negative ? 'end' : 'start');
      amount.setAttribute('class', 'amount');
      amount.textContent = money(p.net);
      g.appendChild(amount);
    });
    svgEl('line', { x1: axis, x2: axis, y1: top - 4, y2: height - 6, class: 'axis' });
  }

  function renderPairs(pairs) {
    var body = $('#clearing tbody');
    clear(body);
    pairs.forEach(function (p) {
      var tr = el('tr');
      tr.appendChild(td(region(p.insured)));
      tr.appendChild(td(region(p.treatment)));
      tr.appendChild(td(text(p.count), 'num'));
      tr.appendChild(td(money(p.fund_pay_sumamt), 'num'));
      tr.appendChild(td(money(p.acct_pay), 'num'));
      tr.appendChild(td(money(p.owed), 'num'));
      body.appendChild(tr);
    });
    if (!pairs.length) { body.appendChild(emptyRow(6)); }
  }

  function renderBilateral(list) {
    var body = $('#bilateral tbody');
    clear(body);
    list.forEach(function (b) {
      var tr = el('tr');
      tr.appendChild(td(region(b.a)));
      tr.appendChild(td(region(b.b)));
      tr.appendChild(td(money(b.net), 'num ' + (isZero(b.net) ? '' : isNegative(b.net) ? 'pay' : 'receive')));
      body.appendChild(tr);
    });
    if (!list.length) { body.appendChild(emptyRow(3)); }
  }

  function emptyRow(span) {
    var tr = el('tr', { class: 'empty-row' });
    var cell = el('td', { colspan: String(span) }, [bilingual('无', 'none')]);
    tr.appendChild(cell);
    return tr;
  }

  function renderTotals(totals) {
    var body = $('#totals tbody');
    clear(body);
    totals.forEach(function (t) {
      var g = t.gateway || {}, r = t.region || {};
      var tr = el('tr', { class: t.matched ? 'matched' : 'unmatched', 'data-admdvs': t.admdvs });
      tr.appendChild(td(region(t.admdvs)));
      tr.appendChild(td(text(t.insutype)));
      tr.appendChild(td(text(t.clr_type)));
      tr.appendChild(td(text(g.count), 'num'));
      tr.appendChild(td(text(r.count), 'num'));
      tr.appendChild(td(money(g.medfee_sumamt), 'num'));
      tr.appendChild(td(money(r.medfee_sumamt), 'num'));
      tr.appendChild(td(money(g.fund_pay_sumamt), 'num'));
      tr.appendChild(td(money(r.fund_pay_sumamt), 'num'));
      tr.appendChild(td(t.matched ? bilingual('相符', 'matched') : bilingual('不符', 'differs'),
        t.matched ? 'ok' : 'bad'));
      body.appendChild(tr);
    });
    if (!totals.length) { body.appendChild(emptyRow(10)); }
  }

  function renderCounts(counts) {
    var list = $('#counts ul');
    clear(list);
    var keys = Object.keys(CLASS_NAMES);
    Object.keys(counts).forEach(function (k) { if (keys.indexOf(k) < 0) { keys.push(k); } });
    keys.forEach(function (k) {
      var n = counts[k] || 0;
      var names = CLASS_NAMES[k] || [k, ''];
      var li = el('li', { 'data-class': k, class: n > 0 ? 'nonzero' : '' });
      li.appendChild(el('span', { class: 'count', text: String(n) }));
      li.appendChild(bilingual(names[0], names[1]));
      list.appendChild(li);
    });
  }

  function className(c) {
    var names = CLASS_NAMES[c];
    return names ? bilingual(names[0], names[1]) : text(c);
  }

  function stateName(s) {
    var names = STATE_NAMES[s];
    return names ? bilingual(names[0], names[1]) : text(s);
  }

  function rowState(d) {
    var row = d.region || d.gateway;
    return row ? row.state : null;
  }

  function renderDiscrepancies(r) {
    var list = r.discrepancies || [];
    var body = $('#discrepancies tbody');
    clear(body);
    list.forEach(function (d, i) {
      var id = d.id || String(i);
      var tr = el('tr', { 'data-id': id, 'data-class': d.class, tabindex: '0', class: 'clickable' });
      tr.appendChild(td(className(d.class)));
      tr.appendChild(td(region(d.admdvs)));
      tr.appendChild(td(text(d.setl_id), 'mono'));
      tr.appendChild(td(text(d.msgid), 'mono'));
      tr.appendChild(td(text(d.fixmedins_code)));
      tr.appendChild(td(stateName(rowState(d))));
      tr.appendChild(td(text(d.detail), 'detail-text'));
      tr.addEventListener('click', function () { select(id); });
      tr.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); select(id); }
      });
      if (id === state.selected) { tr.classList.add('selected'); }
      body.appendChild(tr);
    });
    $('#discrepancies-empty').hidden = list.length > 0;
    var note = $('#discrepancies-note');
    if (r.discrepancies_truncated) {
      note.hidden = false;
      note.textContent = '仅列出前 ' + text(r.discrepancies_listed) + ' 条（统计为全部）· only the first ' +
        text(r.discrepancies_listed) + ' are listed; the counts are complete.';
    } else {
      note.hidden = true;
    }
    var still = list.some(function (d, i) { return (d.id || String(i)) === state.selected; });
    if (state.selected && still) { showDetail(state.selected); } else { hideDetail(); }
  }

  function findDiscrepancy(id) {
    var list = (state.report && state.report.discrepancies) || [];
    for (var i = 0; i < list.length; i++) {
      if ((list[i].id || String(i)) === id) { return list[i]; }
    }
    return null;
  }

  function select(id) {
    state.selected = id;
    Array.prototype.forEach.call(document.querySelectorAll('#discrepancies tbody tr'), function (tr) {
      tr.classList.toggle('selected', tr.getAttribute('data-id') === id);
    });
    showDetail(id);
    $('#detail').scrollIntoView({ block: 'nearest' });
  }

  function hideDetail() {
    state.selected = null;
    var panel = $('#detail');
    panel.hidden = true;
    panel.removeAttribute('data-id');
    clear($('#detail-body'));
    Array.prototype.forEach.call(document.querySelectorAll('#discrepancies tbody tr.selected'), function (tr) {
      tr.classList.remove('selected');
    });
  }

  function showDetail(id) {
    var d = findDiscrepancy(id);
    if (!d) { hideDetail(); return; }
    var panel = $('#detail');
    var body = $('#detail-body');
    clear(body);
    panel.setAttribute('data-id', id);
    panel.hidden = false;
    var summary = el('p', { class: 'summary' });
    summary.appendChild(className(d.class));
    summary.appendChild(document.createTextNode(' · ' + region(d.admdvs)));
    if (d.side) { summary.appendChild(document.createTextNode(' · ' + (d.side === 'gateway' ? '网关侧 gateway side' : '地区侧 region side'))); }
    body.appendChild(summary);
    body.appendChild(el('p', { class: 'detail-text', text: text(d.detail) }));

    var differing = {};
    (d.fields || []).forEach(function (f) { differing[f.field] = f; });
    var table = el('table', { class: 'side-by-side' });
    var head = el('tr');
    head.appendChild(el('th', null, [bilingual('字段', 'Field')]));
    head.appendChild(el('th', null, [bilingual('网关', 'Gateway')]));
    head.appendChild(el('th', null, [bilingual('地区', 'Region')]));
    head.appendChild(el('th', { class: 'num' }, [bilingual('差额（地区−网关）', 'Difference')]));
    table.appendChild(el('thead', null, [head]));
    var tbody = el('tbody');
    var shown = {};
    function fieldRow(key, zh, en, amount) {
      shown[key] = true;
      var diff = differing[key];
      var g = d.gateway ? d.gateway[key] : undefined;
      var rv = d.region ? d.region[key] : undefined;
      // For a differing field, the comparison's own texts are what was compared.
      if (diff) {
        g = diff.gateway === '' ? null : diff.gateway;
        rv = diff.region === '' ? null : diff.region;
      }
      var show = function (v, side) {
        if (!side) { return el('span', { class: 'absent' }, [bilingual('无', 'absent')]); }
        if (key === 'state' && v) { return stateName(v); }
        return amount ? money(v) : text(v);
      };
      var tr = el('tr', { 'data-field': key, class: diff ? 'differs' : '' });
      tr.appendChild(td(bilingual(zh, en)));
      tr.appendChild(td(show(g, d.gateway || diff), amount ? 'num' : ''));
      tr.appendChild(td(show(rv, d.region || diff), amount ? 'num' : ''));
      tr.appendChild(td(diff && diff.difference !== null && diff.difference !== undefined ? money(diff.difference) : '', 'num'));
      tbody.appendChild(tr);
    }
    ROW_FIELDS.forEach(function (f) { fieldRow(f[0], f[1], f[2], f[3]); });
    // A differing field the page does not know by name.
    Object.keys(differing).forEach(function (k) {
      if (!shown[k]) { fieldRow(k, k, '', differing[k].difference !== null && differing[k].difference !== undefined); }
    });
    table.appendChild(tbody);
    body.appendChild(table);
  }

  function renderDisputes(disputes) {
    var body = $('#disputes tbody');
    clear(body);
    disputes.forEach(function (d) {
      var tr = el('tr');
      tr.appendChild(td(region(d.admdvs)));
      tr.appendChild(td(text(d.setl_id), 'mono'));
      tr.appendChild(td(text(d.mdtrt_id), 'mono'));
      tr.appendChild(td(text(d.memo)));
      tr.appendChild(td(text(d.at)));
      body.appendChild(tr);
    });
    $('#disputes-empty').hidden = disputes.length > 0;
  }

  // ---- supervision signals -------------------------------------------------------

  function signalsUrl(date, extra) {
    return '/v1/signals?date=' + encodeURIComponent(date) + (extra || '');
  }

  function setSignalsState(name) { $('#signals').setAttribute('data-state', name); }

  function setSignalDownloads(date) {
    var list = $('#signals-downloads ul');
    clear(list);
    SIGNAL_PAIRS.forEach(function (pair) {
      var code = pair[0] + '-' + pair[1];
      var li = el('li', { 'data-pair': code });
      li.appendChild(document.createTextNode(
        (REGION_NAMES[pair[0]] || pair[0]) + '–' + (REGION_NAMES[pair[1]] || pair[1]) + ' (' + code + ')'));
      ['csv', 'xlsx'].forEach(function (f) {
        li.appendChild(el('a', {
          id: 'signals-' + f + '-' + code,
          href: signalsUrl(date, '&format=' + f + '&pair=' + code),
          download: 'signals-' + date + '-' + code + '.' + f,
          text: f.toUpperCase()
        }));
      });
      list.appendChild(li);
    });
  }

  // Loads the signals of state.date. A 403 (not an officer) only hides the
  // list; any other failure is told inside the section, never in the page's banner.
  function loadSignals() {
    var date = state.date;
    var seq = ++signals.seq;
    if (signals.date !== date) {
      signals.list = null;
      signals.selected = null;
      hideSignalDetail();
      clear($('#signals tbody'));
      $('#signals-empty').hidden = true;
      $('#signals-count').textContent = '';
    }
    signals.date = date;
    setSignalDownloads(date);
    setSignalsState('loading');
    $('#signals-error').hidden = true;
    return fetch(signalsUrl(date), { headers: { Accept: 'application/json' }, cache: 'no-store', credentials: 'same-origin' })
      .then(function (response) {
        return response.text().then(function (body) {
          if (response.status === 403) { return { forbidden: true }; }
          if (!response.ok) { throw new Error(errorText(response.status, body)); }
          var json;
          try { json = JSON.parse(body); } catch (e) {
            throw new Error('信号不是有效的 JSON / the signals are not valid JSON: ' + e.message);
          }
          if (!json || !Array.isArray(json.signals)) {
            throw new Error('缺少 signals 列表 / no "signals" list in the answer');
          }
          return { list: json.signals };
        });
      })
      .then(function (answer) {
        if (seq !== signals.seq) { return; }
        signals.forbidden = !!answer.forbidden;
        signals.list = answer.forbidden ? [] : answer.list;
        renderSignals();
      })
      .catch(function (e) {
        if (seq !== signals.seq) { return; }
        signals.forbidden = false;
        signals.list = null;
        clear($('#signals tbody'));
        $('#signals-empty').hidden = true;
        $('#signals-count').textContent = '';
        hideSignalDetail();
        var box = $('#signals-error');
        box.textContent = '监管信号加载失败 / Could not load the signals — ' + e.message;
        box.hidden = false;
        $('#signals-officers-only').hidden = true;
        $('#signals-body').hidden = false;
        setSignalsState('error');
      });
  }

  function signalId(s, i) { return s.id ? String(s.id) : 'signal-' + i; }

  function ruleName(rule) {
    var names = RULE_NAMES[rule];
    return names ? bilingual(names[0], names[1]) : text(rule);
  }

  function severityName(severity) {
    var names = SEVERITY_NAMES[severity];
    return el('span', { class: 'severity ' + (names ? severity : '') },
      [names ? bilingual(names[0], names[1]) : text(severity)]);
  }

  function listText(list, sep) {
    return Array.isArray(list) && list.length ? list.map(String).join(sep || ', ') : '—';
  }

  // A person key for the table: its first and last hex digits, the whole key as the tooltip.
  function shortKey(key) {
    if (key === null || key === undefined || key === '') { return el('span', { class: 'absent', text: '—' }); }
    var k = String(key);
    var span = el('span', { class: 'mono', title: k, text: k.length > 16 ? k.slice(0, 8) + '…' + k.slice(-4) : k });
    return span;
  }

  function renderSignals() {
    var section = $('#signals');
    if (signals.forbidden) {
      $('#signals-officers-only').hidden = false;
      $('#signals-body').hidden = true;
      clear($('#signals tbody'));
      hideSignalDetail();
      section.classList.add('officers-only');
      setSignalsState('forbidden');
      return;
    }
    section.classList.remove('officers-only');
    $('#signals-officers-only').hidden = true;
    $('#signals-body').hidden = false;
    if (!signals.list) { return; }
    var rule = $('#signals-rule').value;
    var all = signals.list;
    var body = $('#signals tbody');
    clear(body);
    var shown = 0;
    var selectedShown = false;
    all.forEach(function (s, i) {
      if (rule && s.rule !== rule) { return; }
      shown++;
      var id = signalId(s, i);
      var tr = el('tr', { 'data-id': id, 'data-rule': text(s.rule), tabindex: '0', class: 'clickable' });
      tr.appendChild(td(ruleName(s.rule)));
      tr.appendChild(td(severityName(s.severity)));
      tr.appendChild(td(text(s.detected_at), 'nowrap'));
      tr.appendChild(td(listText(s.regions)));
      tr.appendChild(td(listText(s.institutions)));
      tr.appendChild(td(shortKey(s.person_key), 'nowrap'));
      tr.appendChild(td(text(s.detail), 'detail-text'));
      tr.addEventListener('click', function () { selectSignal(id); });
      tr.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); selectSignal(id); }
      });
      if (id === signals.selected) { tr.classList.add('selected'); selectedShown = true; }
      body.appendChild(tr);
    });
    var empty = $('#signals-empty');
    empty.hidden = shown > 0;
    clear(empty);
    if (!all.length) {
      empty.appendChild(bilingual('该日无监管信号', 'No signals on this day'));
    } else {
      empty.appendChild(bilingual('该规则无信号', 'No signals of this rule on this day'));
    }
    $('#signals-count').textContent = rule
      ? shown + ' / ' + all.length + ' 条 signals'
      : all.length + ' 条 signals';
    if (signals.selected && selectedShown) { showSignalDetail(signals.selected); } else { hideSignalDetail(); }
    setSignalsState(shown > 0 ? 'ready' : 'empty');
  }

  function findSignal(id) {
    var list = signals.list || [];
    for (var i = 0; i < list.length; i++) {
      if (signalId(list[i], i) === id) { return list[i]; }
    }
    return null;
  }

  function selectSignal(id) {
    signals.selected = id;
    Array.prototype.forEach.call(document.querySelectorAll('#signals tbody tr'), function (tr) {
      tr.classList.toggle('selected', tr.getAttribute('data-id') === id);
    });
    showSignalDetail(id);
    $('#signal-detail').scrollIntoView({ block: 'nearest' });
  }

  function hideSignalDetail() {
    signals.selected = null;
    var panel = $('#signal-detail');
    panel.hidden = true;
    panel.removeAttribute('data-id');
    clear($('#signal-detail-body'));
    Array.prototype.forEach.call(document.querySelectorAll('#signals tbody tr.selected'), function (tr) {
      tr.classList.remove('selected');
    });
  }

  function showSignalDetail(id) {
    var s = findSignal(id);
    if (!s) { hideSignalDetail(); return; }
    var panel = $('#signal-detail');
    var body = $('#signal-detail-body');
    clear(body);
    panel.setAttribute('data-id', id);
    panel.hidden = false;
    var known = {};
    function field(key, zh, en, value) {
      known[key] = true;
      body.appendChild(el('dt', { 'data-field': key }, [bilingual(zh, en)]));
      var dd = el('dd', { 'data-field': key });
      if (value instanceof Node) { dd.appendChild(value); } else { dd.textContent = value; }
      body.appendChild(dd);
    }
    SIGNAL_FIELDS.forEach(function (f) {
      var key = f[0], v = s[key], shown;
      if (key === 'rule') {
        shown = el('span', null, [ruleName(v)]);
      } else if (key === 'severity') {
        shown = severityName(v);
      } else if (key === 'amounts') {
        shown = Array.isArray(v) && v.length ? v.map(money).join(', ') : '—';
      } else if (Array.isArray(v)) {
        shown = el('span', { class: 'mono', text: listText(v) });
      } else if (key === 'person_key' || key === 'id') {
        shown = v === null || v === undefined || v === '' ? '—' : el('span', { class: 'mono', text: String(v) });
      } else {
        shown = text(v);
      }
      field(key, f[1], f[2], shown);
    });
    // Any field the page does not know by name, as it came.
    Object.keys(s).forEach(function (k) {
      if (known[k]) { return; }
      var v = s[k];
      field(k, k, '', v !== null && typeof v === 'object' ? JSON.stringify(v) : text(v));
    });
  }

  // ---- wiring ------------------------------------------------------------------

  function goTo(date, push) {
    state.date = date;
    state.report = null;
    state.selected = null;
    $('#date-input').value = date;
    setDownloads(date);
    $('#close-panel').hidden = true;
    $('#close-button').hidden = true;
    if (push) {
      var url = new URL(window.location.href);
      url.searchParams.set('date', date);
      window.history.pushState({ date: date }, '', url.toString());
    }
    document.title = '清算 ' + date + ' · Clearing';
    loadSignals();
    return load();
  }

  function init() {
    var params = new URLSearchParams(window.location.search);
    var asked = params.get('date');
    var date = shanghaiToday();
    if (asked) {
      if (validDate(asked)) { date = asked; }
      else { showError('日期无效 / invalid date: ' + asked + '，显示今天 / showing today'); }
    }
    $('#day-form').addEventListener('submit', function (event) {
      event.preventDefault();
      var value = $('#date-input').value;
      if (!validDate(value)) { showError('日期无效 / invalid date: ' + value); return; }
      hideError();
      goTo(value, true);
    });
    $('#close-button').addEventListener('click', function () {
      $('#close-panel').hidden = false;
      $('#close-confirm').focus();
    });
    $('#close-cancel').addEventListener('click', function () { $('#close-panel').hidden = true; });
    $('#close-confirm').addEventListener('click', closeDay);
    $('#detail-close').addEventListener('click', hideDetail);
    $('#signals-rule').addEventListener('change', renderSignals);
    $('#signals-refresh').addEventListener('click', function () { loadSignals(); });
    $('#signal-detail-close').addEventListener('click', hideSignalDetail);
    window.addEventListener('popstate', function () {
      var d = new URLSearchParams(window.location.search).get('date');
      goTo(validDate(d) ? d : shanghaiToday(), false);
    });
    goTo(date, false);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
