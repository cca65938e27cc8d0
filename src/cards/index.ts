// The counter service: card workflows (read, sell, re-issue, service cards) on an encoder, and the books they use.
export { CardCounter, type CardCounterOptions, type CounterSale } from './counter.js';
export {
  GatewayCardCounter,
  type GatewayCardCounterOptions,
  type StationCardOpen,
  type StationCardParam,
  type StationCardReplace,
  type StationCardRewrite,
  type StationCardSale,
} from './gateway-counter.js';
export { LedgerCardSales } from './ledger-sales.js';
export { readCard, readRecordBytes, type CardParameters, type CardReading, type CardWriteBack } from './read.js';
export { makeParameterCard, type ParameterCardRequest, type ParameterValues } from './parameter-card.js';
export {
  prepareSale,
  reissueCard,
  sellCard,
  writePurchase,
  type CardSale,
  type PurchaseWrite,
  type SaleCheck,
  type SaleBooks,
  type SaleRecorder,
  type SaleRefusalCode,
  type SaleRequest,
} from './sale.js';
export { makeCheckCard, makeClearCard, type ServiceCardRequest } from './service-cards.js';
export { rewriteCard, type RewriteOptions, type RewritePlan } from './write.js';
export {
  CardProvisioning,
  type CardHealth,
  type OpenCardRequest,
  type OpenedCard,
  type ReplaceCardRequest,
  type ParameterCardWrite,
  type ReplacedCard,
  type RewriteCardRequest,
  type RewrittenCard,
} from './provisioning.js';
