//! The JSON responses the SDK reads (reference §3), written by the gateway and read by
//! the client with the same types.
//!
//! Writing ([`to_ascii_json`]) follows what the SDK needs: `status`, `ErrorCode` and
//! `ErrorDesc` always present (the [`Outcome`] every response flattens in); `DocId` on
//! every sendEdoc answer, errors included; absent values omitted, never `null` (a `null`
//! in a `data[]` item makes the SDK drop the whole list); only ASCII, with `\uXXXX`
//! escapes (sendEdoc decodes its answer as US-ASCII).
//!
//! Reading is as lenient as the SDK: a number or boolean where a string is expected is
//! taken as its text, `"3"` where a number is expected is read, and `null` reads as
//! absent.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, VxpError};

/// `status` of a successful answer (exact case: callers compare with `"OK"`).
pub const STATUS_OK: &str = "OK";
/// `status` of a failed answer (exact case: getEdoc decodes `data` iff status is not
/// `"FAIL"`).
pub const STATUS_FAIL: &str = "FAIL";
/// `ErrorDesc` of a successful answer.
pub const SUCCESS_DESC: &str = "Success";

/// The three fields every answer carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(rename = "status", deserialize_with = "lenient::string")]
    pub status: String,
    #[serde(rename = "ErrorCode", deserialize_with = "lenient::string")]
    pub error_code: String,
    #[serde(rename = "ErrorDesc", deserialize_with = "lenient::string")]
    pub error_desc: String,
}

impl Outcome {
    /// `"status":"OK","ErrorCode":"0"`.
    pub fn success() -> Self {
        Outcome {
            status: STATUS_OK.into(),
            error_code: ErrorCode::Success.as_str().into(),
            error_desc: SUCCESS_DESC.into(),
        }
    }

    /// `"status":"FAIL"` with a non-`"0"` code and a one-sentence description.
    pub fn failure(code: ErrorCode, desc: impl Into<String>) -> Self {
        debug_assert!(code != ErrorCode::Success, "a failure needs a failure code");
        Outcome {
            status: STATUS_FAIL.into(),
            error_code: code.as_str().into(),
            error_desc: desc.into(),
        }
    }

    /// The failure answer for an error: its code and its message.
    pub fn from_error(error: &VxpError) -> Self {
        Outcome::failure(error.code(), error.to_string())
    }

    /// Success as a caller of the SDK judges it: `status` `"OK"` and `ErrorCode` `"0"`.
    pub fn is_success(&self) -> bool {
        self.status == STATUS_OK && self.error_code == ErrorCode::Success.as_str()
    }
}

/// The answer of sendEdoc; `DocId` is empty on failure but always present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEdocResponse {
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The id the bus gave the message.
    #[serde(rename = "DocId", default, deserialize_with = "lenient::string")]
    pub doc_id: String,
}

/// The answer of the list operations: `data` only on success.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "T: Serialize",
    deserialize = "T: serde::de::DeserializeOwned"
))]
pub struct DataResponse<T> {
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(
        default = "none",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::list"
    )]
    pub data: Option<Vec<T>>,
}

fn none<T>() -> Option<T> {
    None
}

/// The answer of countReceiveEdoc and countReceiveStatus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountResponse {
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u64"
    )]
    pub count: Option<u64>,
}

/// An answer with nothing but the outcome (updateStatus, and every failure of an
/// operation without `DocId`).
pub type PlainResponse = Outcome;

macro_rules! opt_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty => $wire:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(rename = $wire, default, skip_serializing_if = "Option::is_none")]
                pub $field: $ty,
            )*
        }
    };
}

opt_fields! {
    /// An item of getReceivedEdocList's `data`: a message waiting for the system.
    pub struct ReceivedEdoc {
        /// The id to fetch it with (getEdoc) and acknowledge it with (updateStatus).
        #[serde(deserialize_with = "lenient::opt_string")]
        doc_id: Option<String> => "docId",
        #[serde(deserialize_with = "lenient::opt_string")]
        service_type: Option<String> => "serviceType",
        #[serde(deserialize_with = "lenient::opt_string")]
        message_type: Option<String> => "messageType",
        #[serde(deserialize_with = "lenient::opt_string")]
        created_time: Option<String> => "created_time",
        #[serde(deserialize_with = "lenient::opt_string")]
        updated_time: Option<String> => "updated_time",
        #[serde(deserialize_with = "lenient::opt_string")]
        from: Option<String> => "from",
        #[serde(deserialize_with = "lenient::opt_string")]
        to: Option<String> => "to",
        #[serde(deserialize_with = "lenient::opt_string")]
        status: Option<String> => "status",
        #[serde(deserialize_with = "lenient::opt_string")]
        status_desc: Option<String> => "status_desc",
    }
}

opt_fields! {
    /// An item of getSentEdocList's `data`: a message the system sent, per recipient.
    pub struct SentEdoc {
        #[serde(deserialize_with = "lenient::opt_string")]
        sender_doc_id: Option<String> => "senderDocId",
        #[serde(deserialize_with = "lenient::opt_string")]
        receiver_doc_id: Option<String> => "receiverDocId",
        #[serde(deserialize_with = "lenient::opt_string")]
        from_code: Option<String> => "fromCode",
        #[serde(deserialize_with = "lenient::opt_string")]
        to_code: Option<String> => "toCode",
        /// Trích yếu.
        #[serde(deserialize_with = "lenient::opt_string")]
        title: Option<String> => "title",
        /// Số/ký hiệu.
        #[serde(deserialize_with = "lenient::opt_string")]
        notation: Option<String> => "notation",
        #[serde(deserialize_with = "lenient::opt_string")]
        sent_time: Option<String> => "sentTime",
        #[serde(deserialize_with = "lenient::opt_string")]
        received_time: Option<String> => "receivedTime",
        #[serde(deserialize_with = "lenient::opt_string")]
        send_status: Option<String> => "sendStatus",
        #[serde(deserialize_with = "lenient::opt_string")]
        send_status_desc: Option<String> => "sendStatusDesc",
        #[serde(deserialize_with = "lenient::opt_string")]
        receive_status: Option<String> => "receiveStatus",
        #[serde(deserialize_with = "lenient::opt_string")]
        receive_status_desc: Option<String> => "receiveStatusDesc",
        #[serde(deserialize_with = "lenient::opt_string")]
        service_type: Option<String> => "serviceType",
        #[serde(deserialize_with = "lenient::opt_string")]
        message_type: Option<String> => "messageType",
    }
}

opt_fields! {
    /// An item of getAgenciesList's `data`.
    pub struct AgencyEntry {
        #[serde(deserialize_with = "lenient::opt_string")]
        code: Option<String> => "code",
        #[serde(deserialize_with = "lenient::opt_string")]
        id: Option<String> => "id",
        #[serde(deserialize_with = "lenient::opt_string")]
        mail: Option<String> => "mail",
        #[serde(deserialize_with = "lenient::opt_string")]
        name: Option<String> => "name",
        /// The parent agency's id.
        #[serde(deserialize_with = "lenient::opt_string")]
        pid: Option<String> => "pid",
        #[serde(deserialize_with = "lenient::opt_string")]
        old_code: Option<String> => "oldCode",
    }
}

opt_fields! {
    /// An item of getAgenciesListQD20's `data`.
    pub struct AgencyQd20Entry {
        #[serde(deserialize_with = "lenient::opt_string")]
        code: Option<String> => "code",
        #[serde(deserialize_with = "lenient::opt_string")]
        id: Option<String> => "id",
        #[serde(deserialize_with = "lenient::opt_string")]
        mail: Option<String> => "mail",
        #[serde(deserialize_with = "lenient::opt_string")]
        name: Option<String> => "name",
        /// The code under QCVN 102 (the older scheme).
        #[serde(deserialize_with = "lenient::opt_string")]
        code102: Option<String> => "code102",
    }
}

opt_fields! {
    /// An item of getSynchronizeUnit's `data`.
    pub struct SyncUnit {
        #[serde(deserialize_with = "lenient::opt_string")]
        code: Option<String> => "code",
        #[serde(deserialize_with = "lenient::opt_string")]
        id: Option<String> => "id",
        #[serde(deserialize_with = "lenient::opt_string")]
        mail: Option<String> => "mail",
        #[serde(deserialize_with = "lenient::opt_string")]
        name: Option<String> => "name",
        #[serde(deserialize_with = "lenient::opt_string")]
        pid: Option<String> => "pid",
        #[serde(deserialize_with = "lenient::opt_i64")]
        version: Option<i64> => "version",
        #[serde(deserialize_with = "lenient::opt_string")]
        center_code: Option<String> => "centerCode",
        #[serde(deserialize_with = "lenient::opt_bool")]
        deleted: Option<bool> => "deleted",
        #[serde(deserialize_with = "lenient::opt_string")]
        modify_date: Option<String> => "modifyDate",
        #[serde(deserialize_with = "lenient::opt_bool")]
        is_agency: Option<bool> => "isAgency",
    }
}

/// Serializes a response as compact JSON with every non-ASCII character written as a
/// `\uXXXX` escape (two, as a surrogate pair, above U+FFFF).
pub fn to_ascii_json<T: Serialize>(value: &T) -> String {
    // Serializing these types cannot fail: every key is a string and no value is a map
    // with non-string keys.
    let json = serde_json::to_string(value).expect("responses serialize to JSON");
    ascii_escape(&json)
}

/// Replaces every non-ASCII character of a JSON text by its `\uXXXX` escape. Outside
/// strings JSON is ASCII, so every such character is inside a string, where the escape
/// means the same character.
pub fn ascii_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        }
    }
    out
}

/// Deserializers as lenient as the SDK's Gson reading.
mod lenient {
    use serde::de::{self, DeserializeOwned};
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    fn text(v: Value) -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(s),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            other => Some(other.to_string()),
        }
    }

    /// A required string: a number or boolean is taken as its text; `null` is refused (the
    /// SDK turns it into an all-null result).
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        text(Value::deserialize(d)?).ok_or_else(|| de::Error::custom("the value is null"))
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(text(Value::deserialize(d)?))
    }

    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| de::Error::custom(format!("{n} is not an integer"))),
            Value::String(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| de::Error::custom(format!("{s:?} is not an integer"))),
            other => Err(de::Error::custom(format!("{other} is not an integer"))),
        }
    }

    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match opt_i64(d)? {
            Some(n) => u64::try_from(n)
                .map(Some)
                .map_err(|_| de::Error::custom(format!("{n} is negative"))),
            None => Ok(None),
        }
    }

    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(b)),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
            other => Err(de::Error::custom(format!("{other} is not a boolean"))),
        }
    }

    /// `data`: a list whose `null` items are skipped; `null` reads as absent.
    pub fn list<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        d: D,
    ) -> Result<Option<Vec<T>>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::Array(items) => items
                .into_iter()
                .filter(|v| !v.is_null())
                .map(|v| serde_json::from_value(v).map_err(de::Error::custom))
                .collect::<Result<Vec<T>, _>>()
                .map(Some),
            other => Err(de::Error::custom(format!("data is {other}, not a list"))),
        }
    }
}
