import { html } from 'htm/preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, post, requestId } from '../api.js';
import { t, two, when } from '../i18n.js';

// What to do after a refusal of the encoder or the card rules, by its code: the server's sentence says what happened.
const NEXT = {
  NO_CARD: 'doInsert',
  CARD_REMOVED: 'doReinsert',
  WRONG_CARD_KIND: 'doOtherCard',
  NOT_OUR_CARD: 'doOtherCard',
  PSC_ATTEMPTS_LOW: 'doPscLow',
  PSC_REJECTED: 'doPscLow',
  CARD_LOCKED: 'doPscLow',
  CARD_NOT_FOR_METER: 'doOtherCard',
  WRONG_CARD_ROLE: 'doOtherCard',
  PURCHASE_PENDING: 'doPending',
  CARD_DAMAGED: 'doDamaged',
  TIMEOUT: 'doEncoder',
  FRAMING_ERROR: 'doEncoder',
};

/**
 * The counter: read the card, type the amount, sell, print the receipt. Keyboard-first: F2 (or Enter in an empty
 * amount) reads the card, the amount field has the focus, Enter sells, Enter again confirms, P prints, Esc starts over.
 */
export function CounterPage({ me }) {
  const [card, setCard] = useState(null);
  const [amount, setAmount] = useState('');
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [receipt, setReceipt] = useState(null);
  const [sell, setSell] = useState(null);
  const amountRef = useRef(null);
  const okRef = useRef(null);
  const may = me.role === 'cashier';

  const refusal = (e) => {
    const code = e instanceof ApiError ? (e.body?.error?.code ?? '') : '';
    return { text: e instanceof ApiError ? e.message : String(e), next: NEXT[code] ? t(NEXT[code]) : '' };
  };

  const readCard = async () => {
    setBusy(true);
    setError(null);
    setReceipt(null);
    setConfirming(false);
    try {
      const r = await post('/api/counter/read', { requestId: requestId() });
      setCard(r);
      setSell({ requestId: requestId() });
      setTimeout(() => amountRef.current?.focus(), 0);
    } catch (e) {
      setCard(null);
      setError(refusal(e));
    } finally {
      setBusy(false);
    }
  };

  const doSell = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await post('/api/counter/sell', { requestId: sell.requestId, meter: card.meterId, amount, unit: card.unit });
      setReceipt(r.receipt);
      setCard(null);
      setAmount('');
      setConfirming(false);
    } catch (e) {
      setError(refusal(e));
      setConfirming(false);
    } finally {
      setBusy(false);
    }
  };

  const onSubmit = (e) => {
    e.preventDefault();
    if (busy || !card) return;
    if (amount.trim() === '') return;
    if (!confirming) {
      setConfirming(true);
      setTimeout(() => okRef.current?.focus(), 0);
      return;
    }
    doSell();
  };

  useEffect(() => {
    const onKey = (e) => {
      if (e.key === 'F2') {
        e.preventDefault();
        if (may && !busy) readCard();
      } else if (e.key === 'Escape') {
        setConfirming(false);
        setCard(null);
        setError(null);
      } else if ((e.key === 'p' || e.key === 'P') && receipt && e.target.tagName !== 'INPUT') {
        window.print();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });

  const unitWord = card?.unit === 'energy' ? t('kwh') : t('yuan');
  return html`<section id="counter-page" class="counter">
    <p class="hint noprint">${t('counterKeys')}</p>
    <div class="noprint">
      <button id="card-read" disabled=${!may || busy} onClick=${readCard} title=${may ? '' : t('notAllowed')}>${t('readCard')} (F2)</button>
    </div>
    ${error ? html`<div class="refusal" role="alert" id="counter-error"><p>${error.text}</p>${error.next ? html`<p><b>${error.next}</b></p>` : null}</div>` : null}
    ${
      card
        ? html`<form class="dialog noprint" id="counter-sale" onSubmit=${onSubmit}>
          <dl class="facts" id="card-facts">
            <dt>${t('meter')}</dt><dd id="card-meter">${card.meterId ?? card.meterNumber}</dd>
            <dt>${t('customer')}</dt><dd>${card.customerNumber ?? '—'}</dd>
            <dt>${t('cardRole')}</dt><dd>${card.role}</dd>
            <dt>${t('lastPurchase')}</dt><dd>#${card.purchase.count} · ${two(card.purchase.amount / 100)} ${unitWord}</dd>
            ${card.problems?.length ? html`<dt>${t('problems')}</dt><dd class="error">${card.problems.join('; ')}</dd>` : null}
          </dl>
          <label>${t('amount')} (${unitWord})
            <input id="sale-amount" ref=${amountRef} inputmode="decimal" value=${amount} disabled=${confirming || busy} onInput=${(e) => setAmount(e.target.value)} />
          </label>
          ${confirming ? html`<p class="confirm" id="sale-confirm">${t('confirmSale', { amount: `${amount} ${unitWord}`, meter: card.meterId ?? card.meterNumber })}</p>` : null}
          <button type="submit" id="sale-ok" ref=${okRef} disabled=${busy}>${confirming ? t('confirm') : t('sell')}</button>
        </form>`
        : null
    }
    ${receipt ? html`<${Receipt} r=${receipt} />` : null}
  </section>`;
}

function Receipt({ r }) {
  const unit = r.unit === 'energy' ? t('kwh') : t('yuan');
  return html`<article class="receipt" id="receipt">
    <h2>${t('receipt')}</h2>
    <dl class="facts">
      <dt>${t('receiptNo')}</dt><dd id="receipt-no">${r.receiptNo}</dd>
      <dt>${t('meter')}</dt><dd>${r.meter}</dd>
      <dt>${t('customer')}</dt><dd>${r.customerNumber ?? '—'}</dd>
      <dt>${t('amount')}</dt><dd id="receipt-amount">${two(r.amount / 100)} ${unit}</dd>
      <dt>${t('count')}</dt><dd>${r.purchaseCount}</dd>
      <dt>${t('operator')}</dt><dd>${r.operator}</dd>
      <dt>${t('time')}</dt><dd>${when(Date.parse(r.at))}</dd>
    </dl>
    <button class="noprint" id="receipt-print" onClick=${() => window.print()}>${t('print')} (P)</button>
  </article>`;
}
