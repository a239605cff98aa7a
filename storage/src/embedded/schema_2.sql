-- Embedded (SQLite) schema, step 2 (user_version 1 → 2). Mirrors
-- migrations/0002_delivery_provider_message_id.sql of the PostgreSQL backend.
--
-- Status reports (WhatsApp statuses, Infobip delivery reports) name the
-- provider's id of a sent message, which the delivery worker records as
-- `provider_message_id` in the delivery's metadata. This index finds the
-- delivery by (channel, that id); the lookup must write the expression exactly
-- like this. `id` last: the lookup's ORDER BY id then needs no sort, so the
-- planner never prefers walking every delivery of the channel in id order.
-- Partial: deliveries without the key (webhook, echo …) stay out.
CREATE INDEX deliveries_by_provider_message_id
    ON deliveries (channel_id, json_extract(metadata, '$.provider_message_id'), id)
    WHERE json_extract(metadata, '$.provider_message_id') IS NOT NULL;
