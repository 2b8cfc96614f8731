// Dead-letter queue operations: list, show, replay and purge, with bodies decoded through the
// contract (a @bufbuild/protobuf registry, e.g. from a buf image). `grabbit dlq` is built on this.
export {
  DeadLetterQueue,
  registryFromImage,
  type DeadLetterQueueOptions,
  type QueueInfo,
  type ListOptions,
  type ListResult,
  type ReplayOptions,
  type ReplayProgress,
  type ReplayResult,
  type ReplayItem,
} from "./queue.js";
export {
  type DeadLetter,
  type DeathRecord,
  DEAD_LETTER_HEADERS,
  describe as describeDeadLetter,
} from "./message.js";
export {
  type Selection,
  matches as selectionMatches,
  isEmptySelection,
  parseDuration,
  parseReason,
} from "./filter.js";
