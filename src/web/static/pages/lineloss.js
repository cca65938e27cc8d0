import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { get } from '../api.js';
import { t, two } from '../i18n.js';

// The classes as src/services/lineloss classifies a day, with the colour each has on this page and in its chart.
export const CLASSES = ['qualified', 'high', 'negative', 'not-computable'];
const COLOUR = { qualified: '#1a7f37', high: '#cf222e', negative: '#8250df', 'not-computable': '#8c959f' };

/**
 * Line loss per transformer district (docs/lineloss.md): a month's days with their class by colour, the month's
 * figure, a chart of supply, sales and rate, and the explanation of a day (supply, the members' sum, each member,
 * the missing ones and why) when a day is clicked in the chart or the table (Enter on a row does the same).
 */
export function LinelossPage() {
  const [districts, setDistricts] = useState(null);
  const [district, setDistrict] = useState('');
  const [month, setMonth] = useState('');
  const [data, setData] = useState(null);
  const [day, setDay] = useState(null);
  const [error, setError] = useState('');

  useEffect(() => {
    get('/api/lineloss')
      .then((r) => {
        setDistricts(r.districts);
        if (r.districts.length > 0) setDistrict(r.districts[0].id);
      })
      .catch((e) => setError(e.message));
  }, []);

  useEffect(() => {
    if (!district) return;
    setError('');
    setDay(null);
    get(`/api/lineloss/${encodeURIComponent(district)}${month ? `?month=${encodeURIComponent(month)}` : ''}`)
      .then((r) => {
        setData(r);
        if (!month) setMonth(r.month);
      })
      .catch((e) => setError(e.message));
  }, [district, month]);

  const explain = (date) => {
    setDay({ date, loading: true });
    get(`/api/lineloss/${encodeURIComponent(district)}/days/${encodeURIComponent(date)}`)
      .then((r) => setDay({ date, ...r }))
      .catch((e) => setDay({ date, error: e.message }));
  };

  if (districts === null) return html`<p>${error || t('loading')}</p>`;
  if (districts.length === 0) return html`<section id="lineloss-page"><p id="ll-none">${t('llNoDistricts')}</p></section>`;
  const d = districts.find((x) => x.id === district);
  const shift = (n) => {
    const [y, m] = (month || data?.month || '').split('-').map(Number);
    if (!y) return;
    const next = new Date(Date.UTC(y, m - 1 + n, 1));
    setMonth(`${next.getUTCFullYear()}-${String(next.getUTCMonth() + 1).padStart(2, '0')}`);
  };
  return html`<section id="lineloss-page">
    <div class="toolbar">
      <label>${t('llDistrict')}
        <select id="ll-district" value=${district} onChange=${(e) => {
          setMonth('');
          setDistrict(e.target.value);
        }}>
          ${districts.map((x) => html`<option value=${x.id}>${x.id}${x.name ? ` · ${x.name}` : ''}</option>`)}
        </select>
      </label>
      <button type="button" id="ll-prev" onClick=${() => shift(-1)}>‹</button>
      <label>${t('llMonth')}<input id="ll-month" type="month" value=${month} onChange=${(e) => setMonth(e.target.value)} /></label>
      <button type="button" id="ll-next" onClick=${() => shift(1)}>›</button>
    </div>
    ${d ? html`<p class="hint">${t('llBand', { lo: d.qualified[0], hi: d.qualified[1], supply: d.supplyMeter, members: d.members })}${d.target === null ? '' : ` · ${t('llTarget', { target: d.target })}`}</p>` : null}
    <p class="legend">${CLASSES.map((c) => html`<span class=${`pill ll-${c}`}>${t(`ll-${c}`)}</span> `)}</p>
    ${error ? html`<p class="error" role="alert" id="ll-error">${error}</p>` : null}
    ${data && data.district === district ? html`<${MonthView} data=${data} selected=${day?.date} explain=${explain} />` : null}
    ${day ? html`<${DayExplanation} day=${day} />` : null}
  </section>`;
}

function MonthView({ data, selected, explain }) {
  const m = data.monthFigure;
  if (data.days.length === 0 && m === null) return html`<p id="ll-empty">${t('llNoFigures', { month: data.month })}</p>`;
  return html`
    ${
      m
        ? html`<dl class="facts" id="ll-month-figure">
          <dt>${t('llMonthFigure')}</dt><dd><span class=${`pill ll-${m.class}`}>${t(`ll-${m.class}`)}</span></dd>
          <dt>${t('llSupply')}</dt><dd>${two(m.supplyKwh)} ${t('kwh')}</dd>
          <dt>${t('llSales')}</dt><dd>${two(m.salesKwh)} ${t('kwh')}</dd>
          <dt>${t('llLoss')}</dt><dd>${two(m.lossKwh)} ${t('kwh')} · ${m.ratePct === null ? '—' : `${two(m.ratePct)} %`}</dd>
          ${m.days ? html`<dt>${t('llDays')}</dt><dd>${CLASSES.map((c) => `${t(`ll-${c}`)} ${m.days[c === 'not-computable' ? 'notComputable' : c] ?? 0}`).join(' · ')}</dd>` : null}
        </dl>`
        : html`<p class="hint" id="ll-month-open">${t('llMonthOpen')}</p>`
    }
    ${data.days.length > 0 ? html`<${LinelossChart} days=${data.days} explain=${explain} />` : null}
    <table class="grid" id="ll-days"><thead><tr>
      <th>${t('llDate')}</th><th>${t('llSupply')}</th><th>${t('llSales')}</th><th>${t('llLoss')}</th><th>${t('llRate')}</th>
      <th>${t('llClass')}</th><th>${t('llRead')}</th><th>${t('llRev')}</th><th>${t('llMissing')}</th>
    </tr></thead><tbody>
    ${data.days.map(
      (f) => html`<tr data-date=${f.date} data-class=${f.class} tabindex="0" class=${`ll-row${selected === f.date ? ' on' : ''}`}
          onClick=${() => explain(f.date)} onKeyDown=${(e) => e.key === 'Enter' && explain(f.date)}>
        <td>${f.date}</td><td class="num">${two(f.supplyKwh)}</td><td class="num">${two(f.salesKwh)}</td>
        <td class="num">${two(f.lossKwh)}</td><td class="num">${f.ratePct === null ? '—' : two(f.ratePct)}${f.flagged20 ? ' ≥20%' : ''}</td>
        <td><span class=${`pill ll-${f.class}`}>${t(`ll-${f.class}`)}</span></td>
        <td>${f.members.read}/${f.members.expected}</td><td>${f.revision}</td><td>${f.missing.join(', ')}</td>
      </tr>`,
    )}
    </tbody></table>`;
}

/**
 * Supply and sales in kWh (left axis) and the rate in % (right axis) as points in their class's colour; a day that
 * is not computable has no rate and shows as a grey point on the axis. A click on the plot explains that day.
 */
function LinelossChart({ days, explain }) {
  const el = useRef(null);
  useEffect(() => {
    if (!el.current) return;
    const x = days.map((f) => Number(f.date.slice(8, 10)));
    const rateOf = (c) => days.map((f) => (f.class !== c ? null : c === 'not-computable' ? 0 : f.ratePct));
    const dots = (c) => ({
      label: `${t('llRate')} · ${t(`ll-${c}`)}`,
      scale: '%',
      stroke: COLOUR[c],
      paths: () => null,
      points: { show: true, size: 9, fill: COLOUR[c], stroke: COLOUR[c] },
      value: (_u, v) => (v === null ? '—' : c === 'not-computable' ? t('ll-not-computable') : `${two(v)} %`),
    });
    const plot = new uPlot(
      {
        width: Math.min(900, el.current.clientWidth || 900),
        height: 240,
        scales: { x: { time: false }, '%': { auto: true } },
        series: [
          { label: t('llDate'), value: (_u, v) => (v === null ? '—' : (days.find((f) => Number(f.date.slice(8, 10)) === v)?.date ?? '')) },
          { label: t('llSupply'), stroke: '#1f6feb', width: 2, value: (_u, v) => (v === null ? '—' : two(v)) },
          { label: t('llSales'), stroke: '#9a6700', width: 2, value: (_u, v) => (v === null ? '—' : two(v)) },
          ...['qualified', 'high', 'negative', 'not-computable'].map(dots),
        ],
        axes: [
          { values: (_u, vals) => vals.map((v) => (Number.isInteger(v) ? String(v) : '')) },
          { size: 70, values: (_u, vals) => vals.map((v) => two(v)) },
          { scale: '%', side: 1, size: 60, grid: { show: false }, values: (_u, vals) => vals.map((v) => `${v} %`) },
        ],
      },
      [x, days.map((f) => f.supplyKwh), days.map((f) => f.salesKwh), ...CLASSES.map(rateOf)],
      el.current,
    );
    const click = () => {
      const i = plot.cursor.idx;
      if (i !== null && i !== undefined && days[i]) explain(days[i].date);
    };
    plot.over.addEventListener('click', click);
    return () => {
      plot.over.removeEventListener('click', click);
      plot.destroy();
    };
  }, [days]);
  return html`<div class="chart wide" ref=${el} id="ll-chart"></div>`;
}

function DayExplanation({ day }) {
  if (day.loading) return html`<p>${t('loading')}</p>`;
  if (day.error) return html`<p class="error" role="alert" id="ll-day-error">${day.error}</p>`;
  const f = day.figure;
  const read = day.members.filter((m) => m.kwh !== null);
  const missing = day.members.filter((m) => m.kwh === null);
  return html`<article id="ll-day" data-date=${day.date} class="explain">
    <h2>${t('llExplain', { date: day.date })} <span class=${`pill ll-${f.class}`} id="ll-day-class">${t(`ll-${f.class}`)}</span></h2>
    <dl class="facts">
      <dt>${t('llSupply')}</dt><dd id="ll-day-supply">${two(f.supplyKwh)} ${t('kwh')}</dd>
      <dt>${t('llMembersSum', { n: f.members.read, of: f.members.expected })}</dt><dd id="ll-day-sales">${two(f.salesKwh)} ${t('kwh')}</dd>
      <dt>${t('llLoss')}</dt><dd id="ll-day-loss">${two(f.lossKwh)} ${t('kwh')} · ${f.ratePct === null ? '—' : `${two(f.ratePct)} %`}</dd>
      ${f.reason ? html`<dt>${t('llWhy')}</dt><dd id="ll-day-reason">${f.reason}</dd>` : null}
    </dl>
    ${
      missing.length > 0
        ? html`<h3>${t('llMissingMembers')}</h3><ul id="ll-day-missing">${missing.map((m) => html`<li data-meter=${m.meter}><b>${m.meter}</b>${m.why ? `: ${m.why}` : ''}</li>`)}</ul>`
        : null
    }
    <h3>${t('llMembers')}</h3>
    <table class="grid" id="ll-day-members"><thead><tr><th>${t('meter')}</th><th>${t('kwh')}</th><th>${t('llAverage')}</th><th>${t('llChange')}</th></tr></thead><tbody>
      ${read.map(
        (m) => html`<tr data-meter=${m.meter}><td><a href=${`#/meter/${encodeURIComponent(m.meter)}`}>${m.meter}</a></td>
          <td class="num">${two(m.kwh)}</td><td class="num">${two(m.averageKwh)}</td><td class="num">${m.changeKwh === null ? '—' : `${m.changeKwh > 0 ? '+' : ''}${two(m.changeKwh)}`}</td></tr>`,
      )}
    </tbody></table>
  </article>`;
}
