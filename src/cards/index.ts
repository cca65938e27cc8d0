export { readCard, readRecordBytes, type CardReading, type CardWriteBack } from './read.js';
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
export { makeCheckCard, makeClearCard, type ServiceCardRequest } from './service.js';
export { rewriteCard, type RewriteOptions, type RewritePlan } from './write.js';
