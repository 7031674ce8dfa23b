//! The Stripe API, as far as MediLink uses it. Every call that creates something at Stripe
//! carries an idempotency key derived from our own ids, so a retried call cannot create twice.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_checkout::CheckoutSessionMode;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, CreateCheckoutSessionPaymentIntentDataTransferData,
    ProductData,
};
use stripe_connect::account::{
    CreateAccount, CreateAccountCapabilities, CreateAccountCapabilitiesCardPayments,
    CreateAccountCapabilitiesTransfers, CreateAccountController, CreateAccountControllerFees,
    CreateAccountControllerFeesPayer, CreateAccountControllerLosses,
    CreateAccountControllerLossesPayments, CreateAccountControllerStripeDashboard,
    CreateAccountControllerStripeDashboardType,
};
use stripe_connect::account_link::{CreateAccountLink, CreateAccountLinkType};
use stripe_core::refund::CreateRefund;
use stripe_types::Currency;
use stripe_webhook::{Webhook, WebhookError};
use uuid::Uuid;

use crate::config::{Config, Secret};

/// A Stripe client configured from the settings, present only when payments are on.
pub struct Gateway {
    client: Client,
    webhook_secret: Secret,
    platform_fee_bps: u32,
}

/// A Stripe call that failed; the cause goes to the log, never to a client.
#[derive(Debug)]
pub struct GatewayError(StripeError);

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Stripe: {}", self.0)
    }
}

impl std::error::Error for GatewayError {}

type GatewayResult<T> = Result<T, GatewayError>;

/// What a Checkout session is created with.
pub struct CheckoutRequest<'a> {
    pub appointment_id: Uuid,
    pub description: &'a str,
    pub amount: i64,
    pub currency: crate::doctors::currency::Currency,
    pub platform_fee: i64,
    pub destination_account: &'a str,
    pub expires_at: DateTime<Utc>,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

pub struct OpenSession {
    pub id: String,
    pub url: String,
}

pub struct RefundOutcome {
    pub id: String,
    /// Stripe completed it at once (card refunds usually stay pending for a moment).
    pub succeeded: bool,
    pub failed: bool,
}

impl Gateway {
    /// `None` when no Stripe key is configured: payments are off.
    pub fn from_config(config: &Config) -> Result<Option<Self>, StripeError> {
        let (Some(key), Some(webhook_secret)) =
            (&config.stripe_secret_key, &config.stripe_webhook_secret)
        else {
            return Ok(None);
        };
        let mut builder = ClientBuilder::new(key.expose())
            .app_info("MediLink", Some(env!("CARGO_PKG_VERSION").into()), None)
            .timeout(Duration::from_secs(20));
        if let Some(base) = &config.stripe_api_base {
            builder = builder.url(format!("{}/", base.trim_end_matches('/')));
        }
        Ok(Some(Self {
            client: builder.build()?,
            webhook_secret: webhook_secret.clone(),
            platform_fee_bps: config.platform_fee_bps,
        }))
    }

    /// The platform's share of `amount` in minor units, rounded down.
    pub fn platform_fee(&self, amount: i64) -> i64 {
        amount * i64::from(self.platform_fee_bps) / 10_000
    }

    /// Creates an Express-dashboard Connect account for a doctor; the key makes a retry after
    /// a lost answer return the same account.
    pub async fn create_account(&self, doctor_id: Uuid, email: &str) -> GatewayResult<String> {
        let capabilities = CreateAccountCapabilities {
            card_payments: Some(CreateAccountCapabilitiesCardPayments {
                requested: Some(true),
            }),
            transfers: Some(CreateAccountCapabilitiesTransfers {
                requested: Some(true),
            }),
            ..CreateAccountCapabilities::new()
        };
        let controller = CreateAccountController {
            fees: Some(CreateAccountControllerFees {
                payer: Some(CreateAccountControllerFeesPayer::Application),
            }),
            losses: Some(CreateAccountControllerLosses {
                payments: Some(CreateAccountControllerLossesPayments::Application),
            }),
            stripe_dashboard: Some(CreateAccountControllerStripeDashboard {
                type_: Some(CreateAccountControllerStripeDashboardType::Express),
            }),
            ..CreateAccountController::new()
        };
        let account = CreateAccount::new()
            .email(email)
            .capabilities(capabilities)
            .controller(controller)
            .metadata(HashMap::from([(
                "doctor_id".to_owned(),
                doctor_id.to_string(),
            )]))
            .customize()
            .request_strategy(idempotent(&format!("account-{doctor_id}"))?)
            .send(&self.client)
            .await
            .map_err(GatewayError)?;
        Ok(account.id.to_string())
    }

    pub async fn account_link(
        &self,
        account: &str,
        return_url: &str,
        refresh_url: &str,
    ) -> GatewayResult<String> {
        let link = CreateAccountLink::new(account, CreateAccountLinkType::AccountOnboarding)
            .return_url(return_url)
            .refresh_url(refresh_url)
            .send(&self.client)
            .await
            .map_err(GatewayError)?;
        Ok(link.url)
    }

    /// A hosted Checkout page for one appointment: a destination charge to the doctor's
    /// account, less the platform fee. One session per appointment (the key is its id).
    pub async fn checkout_session(
        &self,
        request: &CheckoutRequest<'_>,
    ) -> GatewayResult<OpenSession> {
        let currency: Currency = request
            .currency
            .as_str()
            .to_lowercase()
            .parse()
            .unwrap_or_else(|e| match e {});
        let price = CreateCheckoutSessionLineItemsPriceData {
            product_data: Some(ProductData::new(request.description)),
            unit_amount: Some(request.amount),
            ..CreateCheckoutSessionLineItemsPriceData::new(currency)
        };
        let item = CreateCheckoutSessionLineItems {
            price_data: Some(price),
            quantity: Some(1),
            ..CreateCheckoutSessionLineItems::new()
        };
        let metadata = HashMap::from([(
            "appointment_id".to_owned(),
            request.appointment_id.to_string(),
        )]);
        let intent = CreateCheckoutSessionPaymentIntentData {
            application_fee_amount: Some(request.platform_fee),
            transfer_data: Some(CreateCheckoutSessionPaymentIntentDataTransferData::new(
                request.destination_account,
            )),
            metadata: Some(metadata.clone()),
            ..CreateCheckoutSessionPaymentIntentData::new()
        };
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .line_items(vec![item])
            .payment_intent_data(intent)
            .metadata(metadata)
            .client_reference_id(request.appointment_id.to_string())
            .expires_at(request.expires_at.timestamp())
            .success_url(request.success_url)
            .cancel_url(request.cancel_url)
            .customize()
            .request_strategy(idempotent(&format!("checkout-{}", request.appointment_id))?)
            .send(&self.client)
            .await
            .map_err(GatewayError)?;
        let url = session.url.unwrap_or_default();
        Ok(OpenSession {
            id: session.id.to_string(),
            url,
        })
    }

    /// Refunds a payment in full, taking the transfer and the platform fee back as well.
    pub async fn refund(
        &self,
        payment_id: Uuid,
        payment_intent: &str,
    ) -> GatewayResult<RefundOutcome> {
        let refund = CreateRefund::new()
            .payment_intent(payment_intent)
            .reverse_transfer(true)
            .refund_application_fee(true)
            .metadata(HashMap::from([(
                "payment_id".to_owned(),
                payment_id.to_string(),
            )]))
            .customize()
            .request_strategy(idempotent(&format!("refund-{payment_id}"))?)
            .send(&self.client)
            .await
            .map_err(GatewayError)?;
        let status = refund.status.as_deref().unwrap_or("pending");
        Ok(RefundOutcome {
            id: refund.id.to_string(),
            succeeded: status == "succeeded",
            failed: matches!(status, "failed" | "canceled"),
        })
    }

    /// Checks a webhook's `Stripe-Signature` over the raw body (5 minutes' tolerance).
    pub fn verify(&self, payload: &str, signature: &str) -> Result<(), WebhookError> {
        match Webhook::construct_event(payload, signature, self.webhook_secret.expose()) {
            // Parsing comes after the signature check: a body this build cannot parse into the
            // crate's types was still signed by Stripe; `events` reads what MediLink needs.
            Ok(_) | Err(WebhookError::BadParse(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn idempotent(key: &str) -> GatewayResult<RequestStrategy> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| GatewayError(StripeError::ConfigError(e.to_string())))
}
