//! The message header fields every stage needs: id, type, facility, time, version.

use super::error::Hl7Error;
use super::message::Hl7Message;

/// What MSH (and EVN-1 as a fallback) say about a message. Values are trimmed; empty (or HL7's explicit
/// null `""`) means absent.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct MessageHeader {
    /// MSH-10 message control id: the idempotency key (never empty).
    pub control_id: String,
    /// MSH-9.1 message code, e.g. `ADT` (never empty).
    pub message_code: String,
    /// MSH-9.2 trigger event, e.g. `A01`; EVN-1 when MSH-9.2 is empty (older v2.x senders).
    pub trigger_event: Option<String>,
    /// MSH-9.3 message structure, e.g. `ADT_A01`.
    pub structure: Option<String>,
    /// MSH-3.1 sending application.
    pub sending_application: Option<String>,
    /// MSH-4.1 sending facility (the hospital id).
    pub sending_facility: Option<String>,
    /// MSH-7.1 message date/time, as sent (HL7 DTM).
    pub message_datetime: Option<String>,
    /// MSH-11.1 processing id (`P` production, `T` training, `D` debugging).
    pub processing_id: Option<String>,
    /// MSH-12.1 HL7 version, e.g. `2.5.1`.
    pub version: Option<String>,
}

/// A trimmed, non-empty owned string. HL7's explicit null `""` ("no value / clear it") also reads as
/// absent: the source-neutral records have no way to carry the difference.
pub(crate) fn clean(v: Option<std::borrow::Cow<'_, str>>) -> Option<String> {
    let v = v?;
    let t = v.trim();
    (!t.is_empty() && t != "\"\"").then(|| t.to_string())
}

impl Hl7Message<'_> {
    /// The message header, or the reason it is unusable: [`Hl7Error::MissingControlId`] when MSH-10 is
    /// empty, [`Hl7Error::MissingMessageType`] when MSH-9.1 is.
    pub fn header(&self) -> Result<MessageHeader, Hl7Error> {
        // Split MSH once: ten look-ups below would otherwise each re-walk it.
        let mut msh = [None; 13];
        for (slot, f) in msh.iter_mut().zip(self.all_segments()[0].fields()) {
            *slot = Some(f);
        }
        let get = |f: usize, c| clean(msh[f - 1]?.get(1, c, 0));
        let control_id = get(10, 0).ok_or(Hl7Error::MissingControlId)?;
        let message_code = get(9, 1).ok_or(Hl7Error::MissingMessageType)?;
        let trigger_event = get(9, 2).or_else(|| clean(self.field("EVN", 1, 1, 1, 0)));
        Ok(MessageHeader {
            control_id,
            message_code,
            trigger_event,
            structure: get(9, 3),
            sending_application: get(3, 1),
            sending_facility: get(4, 1),
            message_datetime: get(7, 1),
            processing_id: get(11, 1),
            version: get(12, 1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let m = Hl7Message::parse(
            "MSH|^~\\&|APP^1.2^ISO|MHA02^2.16.840^ISO|R|RF|198908181126+0215|SEC|ADT^A02^ADT_A02| M1 |P|2.8\r\
             EVN|A01|20290801070624",
        )
        .unwrap();
        let h = m.header().unwrap();
        assert_eq!(h.control_id, "M1");
        assert_eq!(h.message_code, "ADT");
        // MSH-9.2 wins over a contradicting EVN-1.
        assert_eq!(h.trigger_event.as_deref(), Some("A02"));
        assert_eq!(h.structure.as_deref(), Some("ADT_A02"));
        assert_eq!(h.sending_application.as_deref(), Some("APP"));
        assert_eq!(h.sending_facility.as_deref(), Some("MHA02"));
        assert_eq!(h.message_datetime.as_deref(), Some("198908181126+0215"));
        assert_eq!(h.processing_id.as_deref(), Some("P"));
        assert_eq!(h.version.as_deref(), Some("2.8"));
    }

    #[test]
    fn trigger_falls_back_to_evn1() {
        let m = Hl7Message::parse("MSH|^~\\&|A|F|||2026||ADT|9|P|2.2\rEVN|A03|2026").unwrap();
        let h = m.header().unwrap();
        assert_eq!(h.message_code, "ADT");
        assert_eq!(h.trigger_event.as_deref(), Some("A03"));
        assert_eq!(h.structure, None);
    }

    #[test]
    fn whitespace_only_control_id_is_missing() {
        let e = Hl7Message::parse("MSH|^~\\&|A|F|||2026||ADT^A01|  |P|2.5").unwrap_err();
        assert_eq!(e, Hl7Error::MissingControlId);
    }
}
