//! Model providers: the built-in ones, choosing a model (configured or detected), and
//! the client settings for one, with its key read from the environment.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Config, ConfigError, Env, ModelRef, Source, Sourced, user_file};
use crate::llm::{ClientSettings, ProviderKind};

/// One provider, built in or configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub kind: Sourced<ProviderKind>,
    pub base_url: Sourced<String>,
    /// The environment variable holding the key; none for servers that need no key.
    pub api_key_env: Option<Sourced<String>>,
    /// The model's context window in tokens, when known.
    pub context_window: Option<Sourced<u64>>,
    /// Extra headers sent with every request.
    pub headers: BTreeMap<String, Sourced<String>>,
    /// The model auto-detection picks for this provider.
    pub default_model: Option<&'static str>,
}

struct BuiltIn {
    name: &'static str,
    kind: ProviderKind,
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
        kind: ProviderKind::Anthropic,
        base_url: "https://api.anthropic.com/v1",
        api_key_env: Some("ANTHROPIC_API_KEY"),
        default_model: Some("claude-sonnet-4-5"),
    },
    BuiltIn {
        name: "openai",
        kind: ProviderKind::OpenaiResponses,
        base_url: "https://api.openai.com/v1",
        api_key_env: Some("OPENAI_API_KEY"),
        default_model: Some("gpt-5"),
    },
    BuiltIn {
        name: "ollama",
        kind: ProviderKind::OpenaiChat,
        base_url: "http://localhost:11434/v1",
        api_key_env: None,
        default_model: None,
    },
    BuiltIn {
        name: "openrouter",
        kind: ProviderKind::OpenaiChat,
        base_url: "https://openrouter.ai/api/v1",
        api_key_env: Some("OPENROUTER_API_KEY"),
        default_model: None,
    },
];

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
    /// `$ANTHROPIC_API_KEY`, `$OPENAI_API_KEY` and a running Ollama (asked at the
    /// `ollama` provider's `base_url`, waiting at most `probe_timeout`).
    pub async fn resolve_model(
        &self,
        env: &Env,
        probe_timeout: Duration,
    ) -> Result<Sourced<ModelRef>, ConfigError> {
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
            match crate::llm::list_models(url, probe_timeout).await {
                Ok(models) => match models.into_iter().next() {
                    Some(model) => {
                        let why = format!("Ollama is running at {url}");
                        let choice = ModelRef { provider: "ollama".to_owned(), model };
                        return Ok(Sourced::new(choice, Source::Detected(why)));
                    }
                    None => tried.push(format!(
                        "Ollama at {url} has no models (pull one with `ollama pull <model>`)"
                    )),
                },
                Err(_) => tried.push(format!("no Ollama answered at {url}")),
            }
        }
        let config_file = match user_file(env) {
            Some(Source::UserFile(path) | Source::CairnConfig(path)) => path.display().to_string(),
            _ => "~/.config/cairn/config.toml".to_owned(),
        };
        Err(ConfigError::NoModel { tried, config_file })
    }

    /// Client settings for `model`, with its key read from the environment.
    pub fn client_settings(
        &self,
        model: &ModelRef,
        env: &Env,
    ) -> Result<ClientSettings, ConfigError> {
        let provider =
            self.providers.get(&model.provider).ok_or_else(|| ConfigError::BadModel {
                what: model.to_string(),
                message: format!("unknown provider `{}`", model.provider),
            })?;
        let mut settings =
            ClientSettings::new(&provider.name, provider.kind.value, &provider.base_url.value);
        if let Some(env_name) = &provider.api_key_env {
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
            settings.api_key_env = Some(env_name.value.clone());
            settings.api_key = Some(key.to_owned());
        }
        settings.headers = provider
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.value.clone()))
            .collect();
        Ok(settings)
    }
}
