//! RPC over MQTT 5 request/response, both ways (`[[rpc_to_mqtt]]`, `[[upstream]] rpc`).
