//! Model providers: the API each speaks, the built-in ones, choosing a model (configured
//! or detected), and the endpoint for one, with its key read from the environment.

use std::collections::BTreeMap;
use std::fmt;

use super::{Config, ConfigError, Env, ModelRef, Source, Sourced, user_file};

/// The API a provider speaks, as a configuration names it (`kind = "openai-chat"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderApi {
    /// OpenAI Chat Completions, which most local servers speak too.
    OpenaiChat,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses.
    OpenaiResponses,
}

impl ProviderApi {
    /// Every API, in the order an error message lists them.
    pub const ALL: [ProviderApi; 3] =
        [ProviderApi::OpenaiChat, ProviderApi::Anthropic, ProviderApi::OpenaiResponses];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderApi::OpenaiChat => "openai-chat",
            ProviderApi::Anthropic => "anthropic",
            ProviderApi::OpenaiResponses => "openai-responses",
        }
    }
}

impl fmt::Display for ProviderApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which field of a Chat Completions request carries the output limit
/// (`max_tokens_field = "max_completion_tokens"`). OpenAI's reasoning models (o1, o3, o4,
/// gpt-5) refuse `max_tokens`; many compatible servers know only `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    MaxTokens,
    MaxCompletionTokens,
}

impl MaxTokensField {
    /// Both fields, in the order an error message lists them.
    pub const ALL: [MaxTokensField; 2] =
        [MaxTokensField::MaxTokens, MaxTokensField::MaxCompletionTokens];

    /// The field's name, as a configuration file and the request write it.
    pub fn as_str(self) -> &'static str {
        match self {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// How hard a model is asked to think: `reasoning = "off|low|medium|high"` (also
/// `--reasoning` and `/reasoning`), or for Anthropic `thinking_budget = N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reasoning {
    /// Ask for nothing: the model's own default.
    Off,
    Low,
    Medium,
    High,
    /// Anthropic's extended thinking with this many tokens of budget.
    ThinkingBudget(u32),
}

impl Reasoning {
    /// The levels a `reasoning` value names, in the order an error message lists them.
    pub const LEVELS: [Reasoning; 4] =
        [Reasoning::Low, Reasoning::Medium, Reasoning::High, Reasoning::Off];
}

impl fmt::Display for Reasoning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reasoning::Off => f.write_str("off"),
            Reasoning::Low => f.write_str("low"),
            Reasoning::Medium => f.write_str("medium"),
            Reasoning::High => f.write_str("high"),
            Reasoning::ThinkingBudget(tokens) => write!(f, "a thinking budget of {tokens} tokens"),
        }
    }
}

impl std::str::FromStr for Reasoning {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Reasoning::LEVELS.into_iter().find(|level| level.to_string() == text).ok_or_else(|| {
            format!("`{text}` is not a reasoning level; expected low, medium, high or off")
        })
    }
}

/// One provider, built in or configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub kind: Sourced<ProviderApi>,
    pub base_url: Sourced<String>,
    /// The environment variable holding the key; none for servers that need no key.
    pub api_key_env: Option<Sourced<String>>,
    /// The model's context window in tokens, when known.
    pub context_window: Option<Sourced<u64>>,
    /// Extra headers sent with every request.
    pub headers: BTreeMap<String, Sourced<String>>,
    /// The model auto-detection picks for this provider.
    pub default_model: Option<&'static str>,
    /// `max_output_tokens`: output tokens asked for per model call.
    pub max_output_tokens: Option<Sourced<u32>>,
    /// `idle_timeout`: seconds a stream (or the wait for its first byte) may be silent.
    pub idle_timeout: Option<Sourced<u64>>,
    /// `retries`: how many times a failed request is tried again (429, 5xx).
    pub retries: Option<Sourced<u32>>,
    /// `max_tokens_field` (openai-chat only): the request field for the output limit.
    pub max_tokens_field: Option<Sourced<MaxTokensField>>,
    /// `prompt_cache`: unset, the prompt cache is used and `prompt_cache_key` goes only to
    /// OpenAI's own API; `false` turns caching off; `true` also sends `prompt_cache_key` to
    /// other OpenAI-compatible servers.
    pub prompt_cache: Option<Sourced<bool>>,
    /// `price`: what the provider charges, for cost estimates. None is built in.
    pub price: Option<Sourced<Price>>,
    /// `reasoning` or `thinking_budget`: how hard its models are asked to think.
    pub reasoning: Option<Sourced<Reasoning>>,
}

/// A provider's prices in dollars per million tokens; each is finite and not negative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Input read from the prompt cache; unset, it costs `input`.
    pub cached_input: Option<f64>,
    /// Input written to the prompt cache (Anthropic); unset, it costs `input`.
    pub cache_write: Option<f64>,
}

// Every price is validated finite, so equality is an equivalence.
impl Eq for Price {}

impl Provider {
    /// The field an `openai-chat` request carries its output limit in: as configured, else
    /// `max_completion_tokens` for OpenAI itself (whose reasoning models refuse
    /// `max_tokens`, and whose other models take either) and `max_tokens` for every other
    /// server, since many compatible ones know only that.
    pub fn max_tokens_field(&self) -> MaxTokensField {
        match &self.max_tokens_field {
            Some(field) => field.value,
            None if self.base_url.value.starts_with(OPENAI_API) => {
                MaxTokensField::MaxCompletionTokens
            }
            None => MaxTokensField::MaxTokens,
        }
    }
}

/// OpenAI's own API root, which takes `max_completion_tokens`.
const OPENAI_API: &str = "https://api.openai.com/";

struct BuiltIn {
    name: &'static str,
    kind: ProviderApi,
    base_url: &'static str,
    api_key_env: Option<&'static str>,
    default_model: Option<&'static str>,
}

/// `openai` speaks the Responses API: it is OpenAI's current protocol, and the one its
/// reasoning models are fully available through. Point a provider of kind `openai-chat`
/// at the same URL to use Chat Completions instead.
const BUILT_INS: [BuiltIn; 4] = [
    BuiltIn {
        name: "anthropic",
        kind: ProviderApi::Anthropic,
        base_url: "https://api.anthropic.com/v1",
        api_key_env: Some("ANTHROPIC_API_KEY"),
        default_model: Some("claude-sonnet-4-5"),
    },
    BuiltIn {
        name: "openai",
        kind: ProviderApi::OpenaiResponses,
        base_url: "https://api.openai.com/v1",
        api_key_env: Some("OPENAI_API_KEY"),
        default_model: Some("gpt-5"),
    },
    BuiltIn {
        name: "ollama",
        kind: ProviderApi::OpenaiChat,
        base_url: "http://localhost:11434/v1",
        api_key_env: None,
        default_model: None,
    },
    BuiltIn {
        name: "openrouter",
        kind: ProviderApi::OpenaiChat,
        base_url: "https://openrouter.ai/api/v1",
        api_key_env: Some("OPENROUTER_API_KEY"),
        default_model: None,
    },
];

/// The variables the built-in providers read their keys from.
pub(super) fn built_in_key_vars() -> impl Iterator<Item = &'static str> {
    BUILT_INS.iter().filter_map(|built_in| built_in.api_key_env)
}

/// The built-in providers, keyed by name, as if no file defined any.
pub(super) fn built_in_providers() -> BTreeMap<String, Provider> {
    BUILT_INS
        .iter()
        .map(|built_in| {
            let provider = Provider {
                name: built_in.name.to_owned(),
                kind: Sourced::new(built_in.kind, Source::BuiltIn),
                base_url: Sourced::new(built_in.base_url.to_owned(), Source::BuiltIn),
                api_key_env: built_in
                    .api_key_env
                    .map(|env| Sourced::new(env.to_owned(), Source::BuiltIn)),
                context_window: None,
                headers: BTreeMap::new(),
                default_model: built_in.default_model,
                max_output_tokens: None,
                idle_timeout: None,
                retries: None,
                max_tokens_field: None,
                prompt_cache: None,
                price: None,
                reasoning: None,
            };
            (built_in.name.to_owned(), provider)
        })
        .collect()
}

/// `provider/model` in a user's words; `None` if either part is missing.
fn split_model(text: &str) -> Option<(&str, &str)> {
    let (provider, model) = text.split_once('/')?;
    (!provider.is_empty() && !model.is_empty()).then_some((provider, model))
}

impl Config {
    pub(super) fn parse_model(&self, text: &str) -> Result<ModelRef, String> {
        let Some((provider, model)) = split_model(text) else {
            return Err(format!("`{text}` is not of the form <provider>/<model>"));
        };
        if !self.providers.contains_key(provider) {
            let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
            return Err(format!(
                "`{text}` names an unknown provider `{provider}`; known providers: {}",
                known.join(", ")
            ));
        }
        Ok(ModelRef { provider: provider.to_owned(), model: model.to_owned() })
    }

    /// The model to use: the configured one, or else the first available of
    /// `$ANTHROPIC_API_KEY`, `$OPENAI_API_KEY` and a running Ollama. `probe_ollama` asks
    /// the `ollama` provider's `base_url` for its models: `None` when nothing answered.
    pub async fn resolve_model<F, Fut>(
        &self,
        env: &Env,
        probe_ollama: F,
    ) -> Result<Sourced<ModelRef>, ConfigError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Option<Vec<String>>>,
    {
        if let Some(model) = &self.model {
            return Ok(model.clone());
        }
        let mut tried = Vec::new();
        for name in ["anthropic", "openai"] {
            let Some(provider) = self.providers.get(name) else { continue };
            let (Some(env_name), Some(model)) = (&provider.api_key_env, provider.default_model)
            else {
                continue;
            };
            if env.get(&env_name.value).is_some() {
                let why = format!("${} is set", env_name.value);
                let choice = ModelRef { provider: name.to_owned(), model: model.to_owned() };
                return Ok(Sourced::new(choice, Source::Detected(why)));
            }
            tried.push(format!("${} is not set", env_name.value));
        }
        if let Some(ollama) = self.providers.get("ollama") {
            let url = &ollama.base_url.value;
            match probe_ollama(url.clone()).await {
                Some(models) => match models.into_iter().next() {
                    Some(model) => {
                        let why = format!("Ollama is running at {url}");
                        let choice = ModelRef { provider: "ollama".to_owned(), model };
                        return Ok(Sourced::new(choice, Source::Detected(why)));
                    }
                    None => tried.push(format!(
                        "Ollama at {url} has no models (pull one with `ollama pull <model>`)"
                    )),
                },
                None => tried.push(format!("no Ollama answered at {url}")),
            }
        }
        let config_file = match user_file(env) {
            Some(Source::UserFile(path) | Source::CairnConfig(path)) => path.display().to_string(),
            _ => "~/.config/cairn/config.toml".to_owned(),
        };
        Err(ConfigError::NoModel { tried, config_file })
    }

    /// Where to reach `model`, with its key read from the environment. A key is only sent
    /// to a `base_url` that did not come from a project file.
    pub fn endpoint(&self, model: &ModelRef, env: &Env) -> Result<Endpoint<'_>, ConfigError> {
        let provider =
            self.providers.get(&model.provider).ok_or_else(|| ConfigError::BadModel {
                what: model.to_string(),
                message: format!("unknown provider `{}`", model.provider),
            })?;
        let Some(env_name) = &provider.api_key_env else {
            return Ok(Endpoint { provider, api_key: None });
        };
        if let Source::ProjectFile(path) = &provider.base_url.source {
            return Err(ConfigError::UntrustedUrl {
                path: path.clone(),
                provider: provider.name.clone(),
                url: provider.base_url.value.clone(),
                env: env_name.value.clone(),
            });
        }
        let key = env.get(&env_name.value).ok_or_else(|| ConfigError::MissingKey {
            provider: provider.name.clone(),
            env: env_name.value.clone(),
        })?;
        let api_key = ApiKey { env: env_name.value.clone(), value: key.to_owned() };
        Ok(Endpoint { provider, api_key: Some(api_key) })
    }
}

/// What a client for one model needs from configuration: its provider and key.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    pub provider: &'a Provider,
    /// None for servers that need no key.
    pub api_key: Option<ApiKey>,
}

/// An API key and the variable it was read from.
#[derive(Clone)]
pub struct ApiKey {
    pub env: String,
    pub value: String,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey").field("env", &self.env).field("value", &"****").finish()
    }
}
