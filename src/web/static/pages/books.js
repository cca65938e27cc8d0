import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { get } from '../api.js';
import { t, when } from '../i18n.js';

function today(tz) {
  // The gateway's local date (en-CA formats as YYYY-MM-DD).
  return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
}

const CHANNELS = { operator: 'channelOperator', card: 'channelCard', remote: 'channelRemote', allowance: 'channelAllowance' };

function Sum({ s }) {
  return html`<td class="num">${s.loads.count}</td><td class="num">${s.loads.text}</td><td class="num">${s.refunds.count}</td><td class="num">${s.refunds.text}</td><td class="num"><b>${s.net.text}</b></td>`;
}

const sumHead = () =>
  html`<th>${t('loadCount')}</th><th>${t('amount')}</th><th>${t('refunds')}</th><th>${t('amount')}</th><th>${t('net')}</th>`;

export function BooksPage({ me, timeZone }) {
  const [kind, setKind] = useState('daily');
  const [period, setPeriod] = useState(today(timeZone));
  const [operator, setOperator] = useState('');
  const [report, setReport] = useState(null);
  const [error, setError] = useState('');
  const query = () => `kind=${kind}&period=${encodeURIComponent(period)}${operator ? `&operator=${encodeURIComponent(operator)}` : ''}`;
  useEffect(() => {
    setError('');
    get(`/api/books?${query()}`)
      .then(setReport)
      .catch((e) => {
        setReport(null);
        setError(e.message);
      });
  }, [kind, period, operator]);
  const switchKind = (k) => {
    setKind(k);
    setPeriod(k === 'daily' ? today(timeZone) : today(timeZone).slice(0, 7));
  };
  const r = report;
  return html`<section id="books-page">
    <div class="inline noprint">
      <select id="books-kind" value=${kind} onChange=${(e) => switchKind(e.target.value)}>
        <option value="daily">${t('daily')}</option><option value="monthly">${t('monthly')}</option>
      </select>
      <input id="books-period" value=${period} onChange=${(e) => setPeriod(e.target.value)} />
      <input id="books-operator" placeholder=${t('operator')} value=${operator} onChange=${(e) => setOperator(e.target.value.trim())} />
      <a class="button" id="books-csv" href=${`/api/books.csv?${query()}`} download>CSV</a>
      ${kind === 'daily' ? html`<button id="books-print" onClick=${() => window.print()}>${t('printSheet')}</button>` : null}
    </div>
    ${error ? html`<p class="error">${error}</p>` : null}
    ${r ? html`<div class="sheets">${(kind === 'daily' ? [1, 2, 3] : [1]).map((copy) => html`<${Sheet} r=${r} copy=${copy} kind=${kind} me=${me} />`)}</div>` : null}
  </section>`;
}

function Sheet({ r, copy, kind }) {
  return html`<article class=${`sheet ${copy > 1 ? 'copy' : ''}`} data-copy=${copy}>
    <h2>${t(kind === 'daily' ? 'dailySheet' : 'monthlySheet')} ${r.period} · ${r.gateway}${kind === 'daily' ? html` <small>(${t('copy')} ${copy}/3)</small>` : null}</h2>
    <p class="muted">${t('asOf')} ${when(Date.parse(r.asOf))} · ${r.timeZone}${r.operator ? ` · ${t('operator')}: ${r.operator}` : ''}</p>
    <h3>${t('totals')}</h3>
    <table class="grid" id=${copy === 1 ? 'books-totals' : undefined}><thead><tr><th>${t('unit')}</th>${sumHead()}<th>${t('cash')}</th><th>${t('allowances')}</th></tr></thead><tbody>
      ${r.totals.map((s) => html`<tr><td>${s.unit === 'money' ? t('yuan') : t('kwh')}</td><${Sum} s=${s} /><td class="num">${s.cash.net.text}</td><td class="num">${s.allowances.text}</td></tr>`)}
    </tbody></table>
    <h3>${t('byOperator')}</h3>
    <table class="grid" id=${copy === 1 ? 'books-operators' : undefined}><thead><tr><th>${t('operator')}</th><th>${t('unit')}</th>${sumHead()}</tr></thead><tbody>
      ${r.byOperator.map((s) => html`<tr data-operator=${s.operator ?? ''}><td>${s.operator ?? '—'}</td><td>${s.unit === 'money' ? t('yuan') : t('kwh')}</td><${Sum} s=${s} /></tr>`)}
    </tbody></table>
    <h3>${t('byChannel')}</h3>
    <table class="grid"><thead><tr><th>${t('channel')}</th><th>${t('unit')}</th>${sumHead()}</tr></thead><tbody>
      ${r.byChannel.map((s) => html`<tr><td>${t(CHANNELS[s.channel] ?? s.channel)}</td><td>${s.unit === 'money' ? t('yuan') : t('kwh')}</td><${Sum} s=${s} /></tr>`)}
    </tbody></table>
    ${
      r.unconfirmed.length > 0
        ? html`<h3>${t('unconfirmed')}</h3><ul>${r.unconfirmed.map((u) => html`<li>${u.meter} · ${u.text} · ${u.operator ?? ''} · ${u.reason}</li>`)}</ul>`
        : null
    }
    <h3>${t('reconciliation')}</h3>
    ${
      r.reconciliation.length === 0
        ? html`<p>${t('nothing')}</p>`
        : html`<table class="grid" id=${copy === 1 ? 'books-reconciliation' : undefined}><thead><tr><th>${t('meter')}</th><th>${t('opening')}</th><th>${t('closing')}</th><th>${t('booksLoads')}</th><th>${t('status')}</th></tr></thead><tbody>
        ${r.reconciliation.map(
          (
            m,
          ) => html`<tr class=${m.status === 'balanced' ? '' : 'warnrow'} data-meter=${m.meter}><td>${m.meter}</td><td>${m.opening?.count ?? '—'}</td><td>${m.closing?.count ?? '—'}</td><td>${m.booksLoads}</td>
            <td>${t(m.status)}${(m.swaps ?? []).map((w) => html`<div class="swap">${w.text}</div>`)}${m.findings.map((f) => html`<div class="finding">${f.meaning}</div>`)}</td></tr>`,
        )}
      </tbody></table>`
    }
    ${
      kind === 'daily'
        ? html`<div class="signatures"><span>${t('sellerSign')} ____________________</span><span>${t('cashierSign')} ____________________</span><span>${t('date')} __________</span></div>`
        : null
    }
  </article>`;
}
