import { html } from 'htm/preact';
import { useEffect } from 'preact/hooks';
import { get } from '../api.js';
import { t, two, yuan, kwh } from '../i18n.js';
import { setOverview, useLive } from '../live.js';

export function OverviewPage() {
  const live = useLive();
  useEffect(() => {
    get('/api/overview')
      .then(setOverview)
      .catch(() => {});
  }, []);
  const o = live.overview;
  if (!o) return html`<p>${t('loading')}</p>`;
  return html`<section class="overview" id="overview">
    ${live.connected ? null : html`<p class="error">${t('lost')}</p>`}
    <div class="cards">
      <div class=${`card ${o.broker.connected ? 'good' : 'bad'}`} id="ov-broker">
        <h3>${t('broker')}</h3>
        <p>${o.broker.connected ? t('connected') : t('disconnected')}</p>
        <small>${o.broker.url}</small>
      </div>
      <div class=${`card ${o.meters.offline > 0 ? 'bad' : 'good'}`} id="ov-meters">
        <h3>${t('meters')}</h3>
        <p><span id="ov-online">${o.meters.online}</span> ${t('online')} · <span id="ov-offline">${o.meters.offline}</span> ${t('offline')}</p>
        <small>${o.meters.total} · ${o.meters.unreachable} ${t('unreachable')}</small>
      </div>
      <div class=${`card ${o.alerts.active > 0 ? 'warn' : 'good'}`} id="ov-alerts">
        <h3>${t('activeAlerts')}</h3>
        <p><a href="#/alerts">${o.alerts.active}</a></p>
      </div>
      <div class="card" id="ov-sales">
        <h3>${t('salesToday')}</h3>
        <p>${yuan(o.sales.moneyFen / 100)}</p>
        <small>${o.sales.energyCentiKwh > 0 ? `${kwh(o.sales.energyCentiKwh / 100)} · ` : ''}${o.sales.loads} ${t('loads')}</small>
      </div>
      ${
        o.disk
          ? html`<div class=${`card ${o.disk.freeBytes < o.disk.totalBytes * 0.1 ? 'bad' : 'good'}`} id="ov-disk">
            <h3>${t('disk')}</h3>
            <p>${two(o.disk.freeBytes / 1073741824)} GiB ${t('free')}</p>
            <small>${two((100 * o.disk.freeBytes) / o.disk.totalBytes)}% · ${two(o.disk.totalBytes / 1073741824)} GiB</small>
          </div>`
          : null
      }
      <div class=${`card ${o.outbox.depth > 1000 || o.outbox.deadLetters > 0 ? 'warn' : ''}`} id="ov-outbox">
        <h3>${t('outbox')}</h3>
        <p>${o.outbox.depth}</p>
        <small>${o.outbox.oldestAgeSeconds === null ? '' : `${t('oldest')} ${o.outbox.oldestAgeSeconds}s · `}${o.outbox.deadLetters} ${t('deadLetters')}</small>
      </div>
    </div>
    <h2>${t('buses')}</h2>
    <table class="grid"><tbody>
      ${o.buses.map(
        (b) => html`<tr class=${b.state === 'up' ? '' : 'offline'} data-bus=${b.id}>
          <td>${b.id}</td><td>${b.state}</td><td>${two(b.utilisation * 100)}% ${t('busy')}</td><td>${b.queued} ${t('queued')}</td>
        </tr>`,
      )}
    </tbody></table>
  </section>`;
}
