/** The MQTT side of the gateway: session, outbox drain, topics, embedded demo broker. */
export {
  MqttSession,
  type MqttSessionOptions,
  type MqttSessionEvents,
  type MqttSettings,
  type PublishOptions,
  type InboundMessage,
  type MessageHandler,
  type Subscription,
  type ReconnectScheduler,
} from './session.js';
export { redactUrl } from '../config/broker-url.js';
export { OutboxDrain, type OutboxDrainOptions, type DrainStats, type DrainError, type DeadLetterEvent } from './drain.js';
export { GatewayTopics, meterTopic, matchesFilter, isTopicSafeId } from './topics.js';
export { ReconnectBackoff, type BackoffOptions } from './backoff.js';
export { startEmbeddedBroker, type EmbeddedBroker, type EmbeddedBrokerOptions } from './broker.js';
export {
  OFFLINE_SHUTDOWN,
  OFFLINE_WILL,
  onlineStatus,
  type BirthInfo,
  type BusStatus,
  type GatewayHealth,
  type GatewayStatus,
} from './status.js';
export { UplinkError, isUplinkError, type UplinkErrorCode } from './errors.js';
