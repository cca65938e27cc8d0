// Provisioning: the customer archive, adopting meters already in service, opening and replacing cards.
export { ARCHIVE_COLUMNS, archiveCsv, parseArchiveCsv, type ArchiveRow, type BadLine, type ParsedArchive } from './archive-csv.js';
export { importArchive, setCustomerState, type ArchiveImportResult } from './archive.js';
export {
  adoptMeters,
  adoptOne,
  booksCount,
  openingKey,
  type AdoptableMeter,
  type AdoptionLine,
  type AdoptionOutcome,
} from './adopt.js';
export { ProvisioningError, type ProvisioningErrorCode } from './errors.js';
export {
  AccountOpening,
  openMeterAccount,
  type AccountMeter,
  type AccountMeters,
  type AccountOpened,
  type AccountOpenRequest,
} from './account.js';
