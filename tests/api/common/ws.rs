//! A raw graphql-transport-ws client over tokio-tungstenite, to test the protocol itself.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Account, Api, profile_input};

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Messages read while waiting for another operation's, kept for their own reader.
    held: Vec<Value>,
}

/// What the server did next.
#[derive(Debug)]
pub enum Received {
    Message(Value),
    Closed(u16, String),
}

impl Api {
    /// An approved doctor registered here by `admin`, with a socket on `on` (this instance or
    /// another) that chose ONLINE.
    pub async fn online_doctor_on(
        &self,
        on: &Api,
        admin: &Account,
        licence: &str,
    ) -> (Account, String, WsClient) {
        let (doctor, id) = self
            .approved_doctor(admin, &format!("Dr {licence}"), profile_input(licence))
            .await;
        let mut socket = on.ws_client(&doctor.access).await;
        socket.go_online().await;
        (doctor, id, socket)
    }

    /// An approved doctor with a socket on this instance that chose ONLINE.
    pub async fn online_doctor(
        &self,
        admin: &Account,
        licence: &str,
    ) -> (Account, String, WsClient) {
        self.online_doctor_on(self, admin, licence).await
    }

    /// A socket with the protocol negotiated but no `connection_init` sent.
    pub async fn ws_raw(&self) -> WsClient {
        WsClient::connect(self.addr).await
    }

    /// Like `ws_raw`, with the upgrade request's `x-request-id` chosen by the test.
    pub async fn ws_raw_with_id(&self, request_id: Option<&str>) -> WsClient {
        WsClient::connect_with_id(self.addr, request_id).await
    }

    /// A socket past `connection_init` and `connection_ack`.
    pub async fn ws_client(&self, token: &str) -> WsClient {
        WsClient::signed_in(self.addr, token).await
    }

    /// The close code of a socket whose `connection_init` carries `token`, which must be
    /// refused.
    pub async fn ws_refused(&self, token: &str) -> u16 {
        let mut ws = self.ws_raw().await;
        ws.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }))
            .await;
        ws.closed().await
    }
}

impl WsClient {
    pub fn new(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self {
            socket,
            held: Vec::new(),
        }
    }

    /// A socket to the server at `addr` with the protocol negotiated but no `connection_init`
    /// sent.
    pub async fn connect(addr: SocketAddr) -> WsClient {
        WsClient::connect_with_id(addr, None).await
    }

    /// Like `connect`, with the upgrade request's `x-request-id` chosen by the test.
    pub async fn connect_with_id(addr: SocketAddr, request_id: Option<&str>) -> WsClient {
        let mut request = format!("ws://{addr}/graphql/ws")
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        if let Some(id) = request_id {
            request
                .headers_mut()
                .insert("x-request-id", id.parse().unwrap());
        }
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connects");
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "graphql-transport-ws"
        );
        WsClient::new(socket)
    }

    /// A socket to the server at `addr` past `connection_init` and `connection_ack`.
    pub async fn signed_in(addr: SocketAddr, token: &str) -> WsClient {
        let mut ws = WsClient::connect(addr).await;
        ws.init(token).await;
        ws
    }

    /// Sends `connection_init` with `token` and waits for `connection_ack`.
    pub async fn init(&mut self, token: &str) {
        self.send(json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }))
            .await;
        let ack = self.next_message().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }

    /// Relays a signal with `sendSignal` and checks that it went.
    pub async fn signal(&mut self, id: &str, input: Value) {
        let sent = self
            .execute(
                id,
                "mutation SendSignal($input: SendSignalInput!) { sendSignal(input: $input) }",
                json!({ "input": input }),
            )
            .await;
        assert_eq!(sent["data"]["sendSignal"], true, "{sent}");
    }

    /// Chooses ONLINE; the socket must be an approved doctor's.
    pub async fn go_online(&mut self) {
        let online = self
            .execute(
                "online",
                "mutation { setDoctorStatus(status: ONLINE) }",
                json!({}),
            )
            .await;
        assert_eq!(online["data"]["setDoctorStatus"], "ONLINE", "{online}");
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("sent");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.into()))
            .await
            .expect("sent");
    }

    /// The next protocol message or close, answering server pings on the way.
    pub async fn receive(&mut self) -> Received {
        loop {
            match self.receive_raw().await {
                Received::Message(message) if message["type"] == "ping" => {
                    self.send(json!({ "type": "pong" })).await;
                }
                other => return other,
            }
        }
    }

    /// The next text frame exactly as the server wrote it (pings answered on the way), for
    /// byte-for-byte comparisons.
    pub async fn next_text(&mut self) -> String {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("the server answers within 10 s");
            match frame {
                Some(Ok(Message::Text(text))) if text.contains(r#""type":"ping""#) => {
                    self.send(json!({ "type": "pong" })).await;
                }
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket failed: {e}"),
                None => panic!("socket ended"),
            }
        }
    }

    /// The next protocol message or close, pings included.
    pub async fn receive_raw(&mut self) -> Received {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("the server answers within 10 s");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Received::Message(
                        serde_json::from_str(text.as_str()).expect("JSON message"),
                    );
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Received::Closed(code, reason);
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Received::Closed(1006, String::new()),
            }
        }
    }

    pub async fn next_message(&mut self) -> Value {
        match self.receive().await {
            Received::Message(message) => message,
            Received::Closed(code, reason) => panic!("closed with {code} {reason}"),
        }
    }

    /// Waits for the close and returns its code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            match self.receive().await {
                Received::Closed(code, _) => return code,
                Received::Message(_) => continue,
            }
        }
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// Runs a query or mutation over the socket and returns its one result (`data`/`errors`).
    pub async fn execute(&mut self, id: &str, query: &str, variables: Value) -> Value {
        self.subscribe(id, query, variables).await;
        let first = self.message_for(id).await;
        if first["type"] == "next" {
            let complete = self.message_for(id).await;
            assert_eq!(complete["type"], "complete", "{complete}");
        }
        first["payload"].clone()
    }

    /// The next message for operation `id`; messages of other operations wait their turn.
    pub async fn message_for(&mut self, id: &str) -> Value {
        if let Some(i) = self.held.iter().position(|m| m["id"] == id) {
            return self.held.remove(i);
        }
        loop {
            let message = self.next_message().await;
            if message["id"] == id {
                return message;
            }
            self.held.push(message);
        }
    }

    /// The next `next` payload's `data` of operation `id`.
    pub async fn next_data(&mut self, id: &str) -> Value {
        let message = self.message_for(id).await;
        assert_eq!(message["type"], "next", "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        message["payload"]["data"].clone()
    }

    /// Makes sure the subscriptions sent so far are listening: the server drives every
    /// operation until it waits before it reads the next message, so one round trip is enough.
    pub async fn sync(&mut self) {
        let reply = self.execute("sync", "{ __typename }", json!({})).await;
        assert_eq!(reply["data"]["__typename"], "Query");
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }

    /// Closes with `code` and waits for the server's close frame: a finished close handshake.
    pub async fn close_cleanly(mut self, code: u16) {
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: code.into(),
            reason: "bye".into(),
        };
        let _ = self.socket.close(Some(frame)).await;
        while let Ok(Some(Ok(_))) =
            tokio::time::timeout(Duration::from_secs(10), self.socket.next()).await
        {}
    }
}

/// The patient calls the doctor over its socket; the doctor's "events" subscription sees it ring.
/// Returns the call's id.
pub async fn start_call(patient: &mut WsClient, doctor: &mut WsClient, doctor_id: &str) -> String {
    let call = patient
        .execute(
            "call",
            "mutation StartCall($doctor: ID!) { startCall(input: { doctorId: $doctor }) { id } }",
            json!({ "doctor": doctor_id }),
        )
        .await;
    let call_id = call["data"]["startCall"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{call}"))
        .to_owned();
    assert_eq!(
        doctor.next_data("events").await["callEvents"]["kind"],
        "INCOMING"
    );
    call_id
}

/// The doctor answers the ringing call; both sides see ACCEPTED on their "events" subscription.
pub async fn accept_call(doctor: &mut WsClient, patient: &mut WsClient, call_id: &str) {
    let answered = doctor
        .execute(
            "answer",
            "mutation($id: ID!) { answerCall(callId: $id, accept: true) { status } }",
            json!({ "id": call_id }),
        )
        .await;
    assert_eq!(
        answered["data"]["answerCall"]["status"], "ACTIVE",
        "{answered}"
    );
    for socket in [doctor, patient] {
        assert_eq!(
            socket.next_data("events").await["callEvents"]["kind"],
            "ACCEPTED"
        );
    }
}

/// Sends `input` as a signal from `from` and returns the signal that `to` receives on its
/// "signals" subscription.
pub async fn relay(from: &mut WsClient, to: &mut WsClient, input: Value) -> Value {
    from.signal("signal", input).await;
    to.next_data("signals").await["signals"].clone()
}

/// Both participants subscribe to the call's signals as "signals" with `query`, and are
/// listening when this returns.
pub async fn listen_for_signals(
    doctor: &mut WsClient,
    patient: &mut WsClient,
    query: &str,
    call_id: &str,
) {
    for socket in [doctor, patient] {
        socket
            .subscribe("signals", query, json!({ "id": call_id }))
            .await;
        socket.sync().await;
    }
}
