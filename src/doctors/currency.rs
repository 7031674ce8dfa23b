//! ISO 4217 currency codes in circulation.

use std::borrow::Cow;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

const CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWL",
];

/// A known ISO 4217 currency, by its upper-case code: how it is stored (as TEXT) and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency(&'static str);

impl Currency {
    /// The currency of `code`, in any case and with surrounding spaces.
    pub fn parse(code: &str) -> Option<Self> {
        Self::known(&code.trim().to_ascii_uppercase())
    }

    fn known(code: &str) -> Option<Self> {
        CODES.binary_search(&code).ok().map(|i| Self(CODES[i]))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl<DB: Database> Type<DB> for Currency
where
    str: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <str as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <str as Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database> Encode<'q, DB> for Currency
where
    &'static str: Encode<'q, DB>,
{
    fn encode_by_ref(&self, buf: &mut DB::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        self.0.encode_by_ref(buf)
    }
}

/// Only the exact stored form: a code this build does not know (or in another case) fails the
/// row rather than passing as money in an unknown currency.
impl<'r, DB: Database> Decode<'r, DB> for Currency
where
    &'r str: Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let code = <&str as Decode<DB>>::decode(value)?;
        Self::known(code).ok_or_else(|| format!("unknown stored currency {code:?}").into())
    }
}

/// A `String` in the schema, as the code always was.
impl OutputType for Currency {
    fn type_name() -> Cow<'static, str> {
        <str as OutputType>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <str as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        _: &ContextSelectionSet<'_>,
        _: &Positioned<Field>,
    ) -> ServerResult<Value> {
        Ok(Value::String(self.0.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::Currency;

    #[test]
    fn codes_are_sorted_for_binary_search() {
        assert!(super::CODES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Currency::parse(" usd ").map(Currency::as_str), Some("USD"));
        assert_eq!(Currency::parse("XYZ"), None);
    }

    #[tokio::test]
    async fn decodes_only_known_stored_codes() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let read = |code: &'static str| {
            sqlx::query_scalar::<_, Currency>("SELECT $1")
                .bind(code)
                .fetch_one(&pool)
        };
        assert_eq!(read("EUR").await.unwrap(), Currency::parse("eur").unwrap());
        for unknown in ["XYZ", "eur", ""] {
            let error = read(unknown).await.unwrap_err();
            assert!(
                matches!(error, sqlx::Error::ColumnDecode { .. }),
                "{error:?}"
            );
        }
    }
}
