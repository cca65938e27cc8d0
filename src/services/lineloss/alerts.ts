import { enqueue, type Tx } from '../../store/index.js';

// The district's line-loss alert, in the alert shape of the alerts mechanism (issue 11). Until that mechanism is
// composed into the gateway, the alert goes out as the line-loss feature's own message, durable through the outbox;
// this function is the one place to switch over.

export type LinelossAlertKind = 'line-loss-high' | 'line-loss-negative';

export interface LinelossAlert {
  readonly alertId: string;
  /** The district's supply meter: the alert shape names a meter. */
  readonly meter: string;
  readonly district: string;
  readonly kind: LinelossAlertKind;
  readonly severity: 'warning';
  readonly state: 'raised' | 'cleared';
  /** ISO time. */
  readonly ts: string;
  readonly evidence: Record<string, unknown>;
}

/** Topic (under the gateway's prefix) of a district's line-loss alerts. */
export function linelossAlertTopic(district: string): string {
  return `lineloss/${district}/alerts`;
}

/** Hands a raised or cleared line-loss alert to the outbox (class alert, in the caller's durable transaction). */
export function publishLinelossAlert(tx: Tx, alert: LinelossAlert): void {
  enqueue(tx, { topic: linelossAlertTopic(alert.district), class: 'alert', payload: { ...alert } });
}
