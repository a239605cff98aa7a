//! `websocket`: the live stream is the delivery. No config, no delivery rows,
//! no inbound endpoint (clients write through REST and the sockets).

use super::AdapterError;
use super::{Adapter, ChannelView, Delivery, DeliveryContext, Inbound, InboundError, InboundRequest};

pub struct WebSocket;

impl Adapter for WebSocket {
    type Config<'a> = ();

    fn kind(&self) -> &'static str {
        "websocket"
    }

    fn delivers(&self) -> bool {
        false
    }

    fn deliver_activity(&self, _: &DeliveryContext<'_>) -> Result<Delivery, AdapterError> {
        Ok(Delivery::Nothing)
    }

    fn parse_inbound(&self, _: &InboundRequest, _: &ChannelView<'_>, _: i64) -> Result<Inbound, InboundError> {
        Err(InboundError::NoInbound(self.kind()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::adapters::tests::{activity, context, view};
    use crate::adapters::ValidateConfig;

    #[test]
    fn takes_no_config_delivers_nothing_and_has_no_inbound() {
        assert_eq!(WebSocket.validate_config(&json!({})), Ok(()));
        assert_eq!(WebSocket.validate_config(&json!({"url": "x"})).map_err(|e| e.field), Err("config.url".into()));
        assert!(!WebSocket.delivers());
        let config = json!({});
        let a = activity("hi");
        assert_eq!(WebSocket.deliver_activity(&context(&config, &a, None)), Ok(Delivery::Nothing));
        let e = WebSocket.parse_inbound(&InboundRequest::default(), &view(&config), 0).expect_err("no inbound");
        assert_eq!(e, InboundError::NoInbound("websocket"));
    }
}
