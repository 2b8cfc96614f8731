// An AsyncAPI 3.0 document for the messaging side of the contracts: exchanges and routing keys of
// events, request queues and replies of AMQP services. The body on the wire is binary protobuf; the
// payload schemas describe the same fields in JSON Schema (proto3 JSON names) so that AsyncAPI tools
// can show and validate them.
import type { DescField, DescMessage, FileRegistry } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import { leadingComment } from "./model/location.js";
import type { EventModel, GenerationModel, MethodModel, ServiceModel } from "./model/model.js";

const AMQP_BINDING_VERSION = "0.3.0";
type Json = Record<string, unknown>;

export interface AsyncApiInfo {
  title: string;
  version: string;
}

const WELL_KNOWN: Record<string, Json> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?[0-9]+(\\.[0-9]+)?s$" },
  "google.protobuf.Struct": { type: "object" },
  "google.protobuf.Value": {},
  "google.protobuf.ListValue": { type: "array" },
  "google.protobuf.Any": { type: "object", properties: { "@type": { type: "string" } } },
  "google.protobuf.Empty": { type: "object" },
  "google.protobuf.FieldMask": { type: "string" },
  "google.protobuf.StringValue": { type: "string" },
  "google.protobuf.BytesValue": { type: "string", contentEncoding: "base64" },
  "google.protobuf.BoolValue": { type: "boolean" },
  "google.protobuf.Int32Value": { type: "integer" },
  "google.protobuf.UInt32Value": { type: "integer", minimum: 0 },
  "google.protobuf.Int64Value": { type: "string", format: "int64" },
  "google.protobuf.UInt64Value": { type: "string", format: "uint64" },
  "google.protobuf.FloatValue": { type: "number" },
  "google.protobuf.DoubleValue": { type: "number" },
};

function scalarSchema(scalar: ScalarType): Json {
  switch (scalar) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "number" };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", minimum: 0 };
    default:
      return { type: "integer" };
  }
}

class SchemaSet {
  readonly schemas: Record<string, Json> = {};

  ref(message: DescMessage): Json {
    const wkt = WELL_KNOWN[message.typeName];
    if (wkt) return wkt;
    if (!this.schemas[message.typeName]) {
      this.schemas[message.typeName] = {}; // placeholder first: messages may refer to themselves
      this.schemas[message.typeName] = this.message(message);
    }
    return { $ref: `#/components/schemas/${message.typeName}` };
  }

  private message(message: DescMessage): Json {
    const properties: Record<string, Json> = {};
    for (const field of message.fields) properties[field.jsonName] = this.field(field);
    const description = leadingComment(message)?.trim();
    return {
      type: "object",
      title: message.typeName,
      ...(description ? { description } : {}),
      properties,
    };
  }

  private field(field: DescField): Json {
    switch (field.fieldKind) {
      case "scalar":
        return scalarSchema(field.scalar);
      case "enum":
        return { type: "string", enum: field.enum.values.map((v) => v.name) };
      case "message":
        return this.ref(field.message);
      case "list":
        return {
          type: "array",
          items:
            field.listKind === "scalar"
              ? scalarSchema(field.scalar)
              : field.listKind === "enum"
                ? { type: "string", enum: field.enum.values.map((v) => v.name) }
                : this.ref(field.message),
        };
      case "map":
        return {
          type: "object",
          additionalProperties:
            field.mapKind === "scalar"
              ? scalarSchema(field.scalar)
              : field.mapKind === "enum"
                ? { type: "string", enum: field.enum.values.map((v) => v.name) }
                : this.ref(field.message),
        };
    }
  }
}

const PROTOBUF_NOTE =
  "Body: the binary protobuf message (content type application/x-protobuf). The schema shows its fields by their proto3 JSON names.";

const STREAM_KINDS: Partial<Record<MethodModel["kind"], string>> = {
  server_streaming: "Server-streaming",
  client_streaming: "Client-streaming",
  bidi_streaming: "Bidirectional streaming",
};

/**
 * For a streaming method, a sentence saying that the request and reply below only open the call:
 * AsyncAPI has no words for a stream of frames between two queues, so the wire contract describes
 * the rest. Empty for a unary method.
 */
function streamNote(method: MethodModel): string {
  const kind = STREAM_KINDS[method.kind];
  return kind
    ? ` ${kind} call: the request opens the stream, and the stream's messages and its end travel as frames described in grabbit's wire contract ("Streams over RabbitMQ").`
    : "";
}

function exchangeBinding(event: EventModel): Json {
  return {
    amqp: {
      is: "routingKey",
      exchange: {
        name: event.exchange,
        type: event.exchangeKind,
        durable: true,
        autoDelete: false,
        vhost: "/",
      },
      bindingVersion: AMQP_BINDING_VERSION,
    },
  };
}

export function buildAsyncApi(
  model: GenerationModel,
  registry: FileRegistry,
  info: AsyncApiInfo,
): Json {
  const schemas = new SchemaSet();
  const channels: Json = {};
  const operations: Json = {};
  const messages: Json = {};
  const lookup = (typeName: string): DescMessage => {
    const desc = registry.getMessage(typeName);
    if (!desc) throw new Error(`protoc-gen-grabbit: ${typeName} is not in the request`);
    return desc;
  };

  for (const file of model.files) {
    for (const event of file.events) {
      const desc = lookup(event.typeName);
      const key = event.typeName;
      messages[key] = {
        name: desc.name,
        title: event.typeName,
        summary: event.comment?.split("\n")[0],
        description: PROTOBUF_NOTE,
        contentType: "application/x-protobuf",
        payload: schemas.ref(desc),
        headers: {
          type: "object",
          description:
            "Metadata such as authorization and traceparent travels as headers of the same names.",
          additionalProperties: { type: "string" },
        },
        bindings: { amqp: { messageType: event.typeName, bindingVersion: AMQP_BINDING_VERSION } },
      };
      const parameters: Json = {};
      for (const field of event.routingFields) {
        const f = desc.fields.find((x) => x.name === field.protoName)!;
        parameters[field.protoName] = {
          description: `Field ${field.protoName} of the event${f.fieldKind === "enum" ? " (enum value name)" : ""}; "." "*" "#" and "%" in values are percent-encoded.`,
          ...(f.fieldKind === "enum" ? { enum: f.enum.values.map((v) => v.name) } : {}),
        };
      }
      const channelId = `event.${event.typeName}`;
      channels[channelId] = {
        address: event.routingKey,
        title: `${event.exchange} ${event.routingKey}`,
        description: `Events ${event.typeName} on ${event.exchangeKind} exchange ${event.exchange}.`,
        messages: { [desc.name]: { $ref: `#/components/messages/${key}` } },
        ...(event.routingFields.length ? { parameters } : {}),
        bindings: exchangeBinding(event),
      };
      const channelRef = { $ref: `#/channels/${channelId}` };
      const messageRef = { $ref: `#/channels/${channelId}/messages/${desc.name}` };
      operations[`publish.${event.typeName}`] = {
        action: "send",
        title: `Publish ${desc.name}`,
        description:
          "Published with publisher confirms and the mandatory flag; an unroutable event is reported to the publisher.",
        channel: channelRef,
        messages: [messageRef],
        bindings: {
          amqp: {
            deliveryMode: event.persistent ? 2 : 1,
            mandatory: true,
            bindingVersion: AMQP_BINDING_VERSION,
          },
        },
      };
      operations[`consume.${event.typeName}`] = {
        action: "receive",
        title: `Consume ${desc.name}`,
        description:
          "Consumers bind their own queue; placeholders become * unless the consumer filters on them. Acked after the handler succeeds, retried with delay, then dead-lettered.",
        channel: channelRef,
        messages: [messageRef],
        bindings: { amqp: { ack: true, bindingVersion: AMQP_BINDING_VERSION } },
      };
    }
    for (const service of file.services) {
      if (service.amqp) addService(service, service.amqp.requestQueue);
    }
  }

  function addService(service: ServiceModel, queue: string): void {
    const requestChannel = `rpc.${service.typeName}`;
    const replyChannel = `rpc.${service.typeName}.reply`;
    const requestMessages: Json = {};
    const replyMessages: Json = {};
    for (const method of service.methods) {
      const requestKey = `${service.typeName}.${method.protoName}.request`;
      const replyKey = `${service.typeName}.${method.protoName}.reply`;
      messages[requestKey] = {
        name: `${method.protoName}Request`,
        title: `${method.path} request (${method.input.typeName})`,
        description: `${PROTOBUF_NOTE} Routed to the handler by header rpc-method ${method.path}.${streamNote(method)}`,
        contentType: "application/x-protobuf",
        correlationId: {
          location: "$message.header#/correlation_id",
          description: "The AMQP correlation_id property.",
        },
        headers: {
          type: "object",
          required: ["rpc-method"],
          properties: {
            "rpc-method": { type: "string", const: method.path },
            "rpc-timeout-ms": {
              type: "integer",
              description: "Remaining deadline in milliseconds; also the message expiration.",
            },
          },
          additionalProperties: { type: "string" },
        },
        payload: schemas.ref(lookup(method.input.typeName)),
        bindings: {
          amqp: { messageType: method.input.typeName, bindingVersion: AMQP_BINDING_VERSION },
        },
      };
      messages[replyKey] = {
        name: `${method.protoName}Reply`,
        title: `${method.path} reply (${method.output.typeName})`,
        description: `${PROTOBUF_NOTE} Sent to reply_to with the request's correlation_id; the body is empty unless rpc-status is 0.${streamNote(method)}`,
        contentType: "application/x-protobuf",
        correlationId: {
          location: "$message.header#/correlation_id",
          description: "The AMQP correlation_id property.",
        },
        headers: {
          type: "object",
          required: ["rpc-status"],
          properties: {
            "rpc-status": {
              type: "integer",
              minimum: 0,
              maximum: 16,
              description: "gRPC status code; 0 is OK.",
            },
            "rpc-message": { type: "string", description: "Error text when rpc-status is not 0." },
            "rpc-status-details-bin": {
              type: "string",
              format: "binary",
              description:
                "Optional, when rpc-status is not 0: the error details, a serialized google.rpc.Status, as an AMQP byte array.",
            },
          },
          additionalProperties: { type: "string" },
        },
        payload: schemas.ref(lookup(method.output.typeName)),
      };
      requestMessages[`${method.protoName}Request`] = {
        $ref: `#/components/messages/${requestKey}`,
      };
      replyMessages[`${method.protoName}Reply`] = { $ref: `#/components/messages/${replyKey}` };
    }
    // The AMQP binding (0.3.0) has no field for the queue type: it travels as the queue argument's
    // own name, an extension, and only when the contract fixes it.
    const queueType = service.amqp?.queueType;
    const typeNote = queueType
      ? ` Every server declares it as a ${queueType} queue (x-queue-type ${queueType}) and refuses to serve an existing queue of another type.`
      : " Declared as a quorum queue where the broker supports it, classic otherwise; an existing queue of either type is used as it is.";
    channels[requestChannel] = {
      address: queue,
      title: `${service.typeName} requests`,
      description: `Request queue of ${service.typeName}, reached through the default exchange. Any number of servers may consume it.${typeNote}`,
      messages: requestMessages,
      bindings: {
        amqp: {
          is: "queue",
          queue: {
            name: queue,
            durable: true,
            exclusive: false,
            autoDelete: false,
            vhost: "/",
            ...(queueType ? { "x-queue-type": queueType } : {}),
          },
          bindingVersion: AMQP_BINDING_VERSION,
        },
      },
    };
    channels[replyChannel] = {
      address: null,
      title: `${service.typeName} replies`,
      description: "The caller's reply_to (RabbitMQ direct reply-to).",
      messages: replyMessages,
    };
    for (const method of service.methods) {
      operations[`${service.typeName}.${method.protoName}`] = {
        action: "send",
        title: method.path,
        ...(method.comment || method.kind !== "unary"
          ? { description: `${method.comment ?? ""}${streamNote(method)}`.trim() }
          : {}),
        channel: { $ref: `#/channels/${requestChannel}` },
        messages: [{ $ref: `#/channels/${requestChannel}/messages/${method.protoName}Request` }],
        reply: {
          address: {
            location: "$message.header#/reply_to",
            description: "The AMQP reply_to property.",
          },
          channel: { $ref: `#/channels/${replyChannel}` },
          messages: [{ $ref: `#/channels/${replyChannel}/messages/${method.protoName}Reply` }],
        },
      };
    }
  }

  return {
    asyncapi: "3.0.0",
    info: {
      title: info.title,
      version: info.version,
      description: "Generated by protoc-gen-grabbit from the .proto contracts.",
    },
    defaultContentType: "application/x-protobuf",
    channels,
    operations,
    components: { messages, schemas: schemas.schemas },
  };
}
